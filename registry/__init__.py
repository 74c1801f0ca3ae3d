"""The IMEI registry: what the decision reads and what the agent records.

- ``imei``: IMEI/IMEISV validation, Luhn, ``tac_of``; ``yamlfile``, ``profile`` and
  ``profiles/``: the country profiles (tj, kg) and their dates.
- ``decision/``: the pure decision (facts, rules, policy), no database import;
  ``check``: gathers a query's facts and decides, for the agent, ``eir check`` and exports.
- ``store``: ``Registry``, named reads (``lookup``, ``sightings``, ``device_type``,
  ``msisdn``, ``notice_queued``...) and bulk writes; ``models`` and ``schema``: the tables
  and their version; ``connections``: every connection is opened there (engine, SQLite
  lookup, the recorder's writer); ``statements``: the SQL written by hand.
- ``observations``: first and last sights and notices (``Recorder``), ``writer``: its
  batches; ``sightings``, ``subscribers``, ``outbox``: those tables' imports and exports.
- ``imports``, ``lists``: CSV imports (lists, stolen, pairings, TACs) and list exports.
- ``clock``: the one clock (``Clock``, ``SystemClock``, ``ManualClock``) the command line
  hands down; nothing else here reads the machine's time.
"""
