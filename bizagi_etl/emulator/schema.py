"""Declared shapes of what the emulator serves: the one source for $metadata and $filter typing.

``records`` builds JSON in exactly these shapes; a test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    edm: str  # Edm.String, Edm.Int64, ..., or Collection(Bizagi.X)
    nullable: bool = True
    precision: int | None = None  # Edm.Decimal digits; Edm.DateTimeOffset fractional digits
    scale: int | None = None  # Edm.Decimal digits after the point


def _p(name: str, edm: str, nullable: bool = True) -> Prop:
    return Prop(name, edm, nullable)


PARAM_REF = (
    _p("id", "Edm.Guid", False), _p("name", "Edm.String"), _p("xpath", "Edm.String", False),
    _p("type", "Edm.String"),
)  # fmt: skip
TEMPLATE_FIELD = (
    _p("name", "Edm.String"),
    _p("xpath", "Edm.String", False),
    _p("type", "Edm.String"),
)
# A parameter value is heterogeneous (string, number, boolean, null) or a file list.
PARAM_VALUE = (_p("xpath", "Edm.String", False), _p("value", "Edm.Untyped"),
               _p("files", "Collection(Edm.Untyped)"))  # fmt: skip

COMPLEX_TYPES: dict[str, tuple[Prop, ...]] = {
    "ParameterRef": PARAM_REF,
    "TemplateField": TEMPLATE_FIELD,
    "ParameterValue": PARAM_VALUE,
}

WORKITEM = (
    _p("id", "Edm.Int64", False), _p("taskName", "Edm.String"), _p("taskDisplayName", "Edm.String"),
    _p("state", "Edm.String"), _p("SolutionDate", "Edm.DateTimeOffset"),
    _p("parameters", "Collection(Bizagi.ParameterRef)"),
)  # fmt: skip

CASE = (
    _p("id", "Edm.Int64", False),
    _p("caseNumber", "Edm.String", False), _p("creationDate", "Edm.DateTimeOffset", False),
    _p("estimatedSolutionDate", "Edm.DateTimeOffset"), _p("solutionDate", "Edm.DateTimeOffset"),
    _p("processName", "Edm.String"), _p("closed", "Edm.Boolean", False),
    _p("parameters", "Collection(Bizagi.ParameterValue)"),
)  # fmt: skip
CASE_DRIFT = (_p("priority", "Edm.String"),)

INBOX_CASE = (
    _p("idCase", "Edm.Int64", False), _p("caseNumber", "Edm.String", False),
    _p("SolutionDate", "Edm.DateTimeOffset"), _p("CreationDate", "Edm.DateTimeOffset", False),
    _p("parameters", "Collection(Bizagi.ParameterValue)"),
)  # fmt: skip

CASE_WITH_WORKITEMS = (
    _p("idCase", "Edm.Int64", False), _p("caseNumber", "Edm.String", False),
    _p("CreationDate", "Edm.DateTimeOffset", False), _p("SolutionDate", "Edm.DateTimeOffset"),
    _p("workitems", "Collection(Bizagi.workitem)"),
)  # fmt: skip

PROCESS = (
    _p("id", "Edm.Guid", False), _p("name", "Edm.String", False), _p("displayName", "Edm.String"),
    _p("parameters", "Collection(Bizagi.ParameterRef)"),
    _p("template", "Collection(Bizagi.TemplateField)"),
)  # fmt: skip
PROCESS_METADATA = (
    *PROCESS, _p("entityId", "Edm.Guid", False), _p("processId", "Edm.Int64", False),
    _p("processType", "Edm.String"),
)  # fmt: skip

STAKEHOLDER = (
    _p("id", "Edm.Guid", False), _p("name", "Edm.String", False), _p("displayName", "Edm.String"),
    _p("iconName", "Edm.String"),
)  # fmt: skip

ENTITY = (
    _p("id", "Edm.Guid", False), _p("name", "Edm.String", False), _p("displayName", "Edm.String"),
    _p("type", "Edm.String"), _p("template", "Collection(Bizagi.TemplateField)"),
)  # fmt: skip

ENTITY_VALUE = (_p("id", "Edm.Guid", False), _p("parameters", "Collection(Bizagi.ParameterValue)"))

USER_PROFILE = (
    _p("userName", "Edm.String", False), _p("domain", "Edm.String"), _p("fullName", "Edm.String"),
    _p("email", "Edm.String"), _p("picture", "Edm.String"), _p("userInits", "Edm.String"),
)  # fmt: skip

# A business entity set as any OData service has them: every scalar type, declared in an order
# that is not alphabetical, with the limits real tables have (records: claims.py).
CLAIM = (
    _p("id", "Edm.Int64", False),
    _p("claimNumber", "Edm.String", False),
    _p("status", "Edm.String", False),
    Prop("lastModified", "Edm.DateTimeOffset", False, precision=3),
    Prop("submittedAt", "Edm.DateTimeOffset", False, precision=0),
    _p("policyId", "Edm.Guid", False),
    _p("policyHolder", "Edm.String"),
    Prop("amount", "Edm.Decimal", False, precision=18, scale=4),
    Prop("reserveRatio", "Edm.Decimal", precision=5, scale=5),
    _p("score", "Edm.Double"),
    _p("priorityCode", "Edm.Int16"),
    _p("itemCount", "Edm.Int32", False),
    _p("externalRef", "Edm.Int64"),
    _p("approved", "Edm.Boolean"),
    _p("incidentDate", "Edm.Date"),
    _p("notes", "Edm.String"),
)

# Entity types of the data service, by the name @odata.context and $filter use.
DATA_TYPES: dict[str, tuple[Prop, ...]] = {
    "process": PROCESS,
    "case": CASE,
    "inboxCase": INBOX_CASE,
    "caseWithWorkitems": CASE_WITH_WORKITEMS,
    "workitem": WORKITEM,
    "stakeholder": STAKEHOLDER,
    "entity": ENTITY,
    "entityValue": ENTITY_VALUE,
    "userProfile": USER_PROFILE,
    "Claim": CLAIM,
}

METADATA_TYPES: dict[str, tuple[Prop, ...]] = {
    "process": PROCESS_METADATA,
    "stakeholder": STAKEHOLDER,
}

KEYS = {
    "process": "id", "case": "id", "inboxCase": "idCase", "caseWithWorkitems": "idCase",
    "workitem": "id", "stakeholder": "id", "entity": "id", "entityValue": "id",
    "userProfile": "userName", "Claim": "id",
}  # fmt: skip


def props_of(type_name: str, service: str = "data", drift: bool = False) -> tuple[Prop, ...]:
    types = DATA_TYPES if service == "data" else METADATA_TYPES
    props = types[type_name]
    return props + CASE_DRIFT if drift and type_name == "case" else props
