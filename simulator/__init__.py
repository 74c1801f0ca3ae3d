"""The network around the EIR, for tests, demonstrations and benchmarks.

- ``mme``: an emulated MME (S13 ECR over Diameter); ``msc``: an emulated MSC/VLR (MAP
  CheckIMEI over TCAP/SCCP/M3UA, on ``sigtran.link``).
- ``load``, ``load_wire``, ``load_map``, ``load_map_wire``, ``load_common``: the S13 and MAP
  load generators (pre-encoded requests, a window of requests in flight, percentiles).
- ``demo``: ``eir demo``, the enforcement story told end to end; ``pcap``: captures.
- ``agent_process``: a real ``eir serve`` process started and stopped for tests and benches.
- ``soak``, ``soak_load``, ``soak_peers``, ``soak_population``: the soak with faults
  (bench/soak.py); ``fuzz_frames``, ``fuzz_sockets``: the socket fuzzer (bench/bench_fuzz.py).
- ``commands``: the ``eir sim ...`` commands.
"""
