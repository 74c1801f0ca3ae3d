"""The running EIR: configuration, the EquipmentCheck service, interface adapters, CLI."""
