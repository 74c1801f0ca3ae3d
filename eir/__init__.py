"""The top of the house: the ``eir`` command, composed of the agent's, the registry's and the
simulator's command groups side by side. Nothing below imports this package; the agent
package imports nothing from the simulator (tests/test_layers.py)."""
