"""Answers to requests (RFC 6733 6.2), and error answers built from AvpProblems (7.1, 7.5)."""

from __future__ import annotations

import functools

from diameter.avp import Avp
from diameter.constants import FLAG_E, FLAG_P, is_protocol_error
from diameter.dictionary import Dictionary
from diameter.errors import AvpProblem
from diameter.message import Message


def answer_to(request: Message, origin_host: str, origin_realm: str, result_code: int | None = None) -> Message:
    """The skeleton answer of RFC 6733 6.2: same command, application, ids and P bit;
    Session-Id first when the request had one, then Result-Code, Origin-Host and Origin-Realm.
    Proxy-Info AVPs are appended, in order, by ``finish_answer``."""
    answer = Message(request.command_code, request.flags & FLAG_P, request.application_id,
                     request.hop_by_hop, request.end_to_end, [], request.dictionary)
    session = request.find("Session-Id")
    if session is not None:
        answer.avps.append(session)
    dictionary = request.dictionary
    if result_code is not None:
        answer.avps.append(constant_avp(dictionary, "Result-Code", int(result_code)))
        if is_protocol_error(result_code):
            answer.flags |= FLAG_E
    answer.avps.append(constant_avp(dictionary, "Origin-Host", origin_host))
    answer.avps.append(constant_avp(dictionary, "Origin-Realm", origin_realm))
    return answer


@functools.lru_cache(maxsize=1024)
def constant_avp(dictionary: Dictionary, name: str, value: int | str) -> Avp:
    """A shared, pre-encoded AVP for a value every answer repeats (see Avp.constant)."""
    return Avp.constant(dictionary.avp_def(name), value)


def finish_answer(request: Message, answer: Message) -> Message:
    """Copy the request's Proxy-Info AVPs, in order, to the end of the answer (RFC 6733 6.2)."""
    answer.avps.extend(request.find_all("Proxy-Info"))
    return answer

def select_problem(problems: list[AvpProblem]) -> AvpProblem | None:
    """The problem to answer with: a protocol error (3xxx) first, else the first one found."""
    for problem in problems:
        if is_protocol_error(problem.result_code):
            return problem
    return problems[0] if problems else None

def failed_avp(problem: AvpProblem) -> Avp | None:
    """Failed-AVP for a problem: the offending AVP, wrapped in its enclosing Grouped AVPs
    (RFC 6733 7.5 allows the grouped AVP to contain only the single offending AVP)."""
    if problem.avp is None:
        return None
    inner = problem.avp
    for outer in reversed(problem.path):
        inner = Avp(outer.code, outer.flags, outer.vendor_id, inner.to_bytes(), [inner], outer.definition)
    return inner

def error_answer(request: Message, origin_host: str, origin_realm: str, problem: AvpProblem,
                 extra: list[Avp] | None = None) -> Message:
    """An answer carrying the problem's Result-Code, E bit for protocol errors, an
    Error-Message with the reason, and Failed-AVP when the problem names an AVP."""
    answer = answer_to(request, origin_host, origin_realm, problem.result_code)
    answer.avps.extend(extra or ())
    _copy_required(request, answer)
    answer.add("Error-Message", problem.reason[:200])
    offender = failed_avp(problem)
    if offender is not None:
        answer.avps.append(Avp.grouped(answer.dictionary.avp_def("Failed-AVP"), [offender]))
    return finish_answer(request, answer)

def _copy_required(request: Message, answer: Message) -> None:
    """Fill AVPs the answer's grammar requires from the request's own, when they decoded
    cleanly (Auth-Session-State of an application answer, for instance)."""
    if answer.definition is None:
        return
    present = {(a.code, a.vendor_id) for a in answer.avps}
    # An AVP some problem names (an undefined Enumerated value, a wrong M bit) did not
    # decode cleanly even when it has a value: echoing it would put the fault in our answer.
    faulty = {id(avp) for p in request.problems for avp in (p.avp, *p.path)}
    for rule in answer.definition.grammar.rules:
        wanted = rule.avp
        if wanted is None or rule.min == 0 or (wanted.code, wanted.vendor_id) in present:
            continue
        source = request.find(wanted.name)
        if source is not None and source.value is not None and id(source) not in faulty:
            answer.avps.append(source)


def result_code_of(answer: Message) -> int | None:
    """Result-Code, or the Experimental-Result-Code inside Experimental-Result."""
    code = answer.value("Result-Code")
    if code is not None:
        return int(code)
    experimental = answer.find("Experimental-Result")
    if experimental is not None:
        inner = experimental.find("Experimental-Result-Code")
        if inner is not None and inner.value is not None:
            return int(inner.value)
    return None

