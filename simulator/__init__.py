"""The network around the EIR: MME and MSC emulators, clock, scenarios, load."""
