"""``zkpy bench``: measure zkpy, with Apache ZooKeeper 3.8 as the baseline in the same run.

Modules, each with one job:

- ``cli``        options, the servers to start or use, the report on stdout (tables or JSON)
- ``suite``      workloads in alternating rounds (A B A B), same-load re-runs, ratios
- ``runner``     one round: N worker processes, their results merged, CPU sampled
- ``worker``     one load-generator process: sessions, requests in flight, latency histograms
- ``workloads``  what a request is for each workload; set-up and clean-up of the znodes
- ``memory``     memory per znode and start-up (recovery) time from a snapshot / the log
- ``servers``    starting and stopping zkpy and Apache servers (by PID), pinning, heap/RSS
- ``histogram``  HdrHistogram latencies, mergeable across processes
- ``cpu``        server / machine CPU from /proc, waiting for a quiet machine
- ``profile``    py-spy sampling of the server and its summary
- ``aggregate``  summaries over rounds and the issue's targets
- ``report``     Markdown tables

Ensembles (``--ensemble``): ``servers.make_ensemble`` starts 3 members per kind, each on its own
127.0.0.x; an endpoint's ``hosts`` is then the members' connect string, which the workers split
so that session i talks to member i mod 3, and the server CPU of a round is the members' sum.
"""
