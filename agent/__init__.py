"""The running EIR: what ``eir serve`` composes, and the agent's commands.

- ``server``: ``serve``, the composition (registry, recorder, group commit, answerers,
  listeners) and the start-up checks; ``config``: the YAML file and the command line.
- ``service``: ``EquipmentCheck``, the one decision service every interface calls
  (``registry.check`` gathers the facts, ``registry.decision`` decides).
- ``s13``: the S13 answerer (ECR to ECA); ``map`` the MAP CheckIMEI answerer (TCAP in,
  TCAP out); ``map_server``: the agent's M3UA wiring on top of ``sigtran.link`` (allow-list,
  admission, bad-input reporting).
- ``durable``: answers that wait for their first sight's group commit; ``admission``: the
  bounds on requests in progress (3004, P-Abort); ``answer_log``: one line per answer.
- ``commands_*``, ``cli_common``, ``context``: ``eir serve``, ``eir check``, ``eir
  registry ...`` and ``eir notices ...``, which ``eir/cli.py`` puts side by side.

Imports nothing from ``simulator`` (tests/test_layers.py).
"""
