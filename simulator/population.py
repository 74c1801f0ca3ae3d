"""The population as it stands during a scenario: which SIM card sits in which handset
slot, and which handsets are in the country. Plain state, no I/O: the runner asks it
which IMSI an attach carries, and applies the SIM and border steps to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.scenario_model import Action, Scenario, Step, Subscriber


class PopulationError(Exception):
    """A step the story does not allow (an attach from a slot without SIM, from abroad)."""


@dataclass
class Population:
    scenario: Scenario
    slots: dict[tuple[str, int], str] = field(default_factory=dict)  # (handset, slot) -> SIM name
    abroad: set[str] = field(default_factory=set)  # handsets out of the country

    def apply(self, step: Step) -> str:
        """Apply a SIM or border step; what changed, for the report."""
        if step.action is Action.INSERT:
            return self._insert(step.sim or "", step.handset or "", step.slot)
        if step.action is Action.REMOVE:
            where = self.where(step.sim or "")
            if where is None:
                raise PopulationError(f"{step.sim} is in no handset")
            del self.slots[where]
            return f"{step.sim} taken out of {where[0]} slot {where[1]}"
        if step.action is Action.SWAP:
            before = self.slots.pop((step.handset or "", step.slot), None)
            done = self._insert(step.sim or "", step.handset or "", step.slot)
            return done + (f" (replacing {before})" if before else "")
        if step.action is Action.MOVE:
            where = self.where(step.sim or "")
            if where is not None:
                del self.slots[where]
            return self._insert(step.sim or "", step.handset or "", step.slot)
        if step.action is Action.LEAVE:
            self.abroad.add(step.handset or "")
            return f"{step.handset} is abroad: our network does not see it"
        if step.action is Action.ENTER:
            self.abroad.discard(step.handset or "")
            return f"{step.handset} is back in the country"
        raise ValueError(f"not a population step: {step.action}")

    def _insert(self, sim: str, handset: str, slot: int) -> str:
        holder = self.slots.get((handset, slot))
        if holder is not None and holder != sim:
            raise PopulationError(f"{handset} slot {slot} already holds {holder} (swap it, or remove it first)")
        where = self.where(sim)
        if where is not None and where != (handset, slot):
            raise PopulationError(f"{sim} is in {where[0]} slot {where[1]} (move it instead)")
        self.slots[(handset, slot)] = sim
        return f"{sim} in {handset} slot {slot}"

    def where(self, sim: str) -> tuple[str, int] | None:
        for place, name in self.slots.items():
            if name == sim:
                return place
        return None

    def sim_in(self, handset: str, slot: int) -> Subscriber:
        """The SIM an attach from this slot carries; PopulationError when there is none, or
        when the handset is abroad (our network cannot see it)."""
        if handset in self.abroad:
            raise PopulationError(f"{handset} is abroad: our network cannot see it (enter: {handset})")
        name = self.slots.get((handset, slot))
        if name is None:
            raise PopulationError(f"{handset} slot {slot} holds no SIM (insert one first)")
        return self.scenario.subscribers[name]
