"""``$metadata``: CSDL XML generated from ``schema``, so it cannot drift from what is served."""

from __future__ import annotations

from functools import cache
from xml.sax.saxutils import quoteattr

from bizagi_etl.emulator.schema import COMPLEX_TYPES, KEYS, METADATA_TYPES, Prop, props_of

NAMESPACE = "Bizagi"

# Entity sets: name -> entity type. Collections that hang off a key (processes(id)/cases,
# entities(id)/values, cases(id)/workitems) are navigation properties of their owner.
DATA_SETS = {
    "processes": "process",
    "cases": "inboxCase",
    "casesWithWorkitems": "caseWithWorkitems",
    "stakeholders": "stakeholder",
    "entities": "entity",
    "Claims": "Claim",
}
DATA_NAVIGATION = {
    "process": ("cases", "case"),
    "case": ("workitems", "workitem"),
    "inboxCase": ("workitems", "workitem"),
    "entity": ("values", "entityValue"),
}
METADATA_SETS = {"processes": "process", "stakeholders": "stakeholder"}


@cache
def csdl_document(service: str, drift: bool) -> str:
    if service == "data":
        type_names: list[str] = ["process", "case", "inboxCase", "caseWithWorkitems", "workitem",
                                 "stakeholder", "entity", "entityValue", "userProfile",
                                 "Claim"]  # fmt: skip
        sets, navigation = DATA_SETS, DATA_NAVIGATION
    else:
        type_names, sets, navigation = list(METADATA_TYPES), METADATA_SETS, {}
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        f'<Schema Namespace="{NAMESPACE}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for name, props in COMPLEX_TYPES.items():
        lines.append(f'<ComplexType Name="{name}" OpenType="true">')
        lines += [_property(p) for p in props]
        lines.append("</ComplexType>")
    for name in type_names:
        lines += _entity_type(name, props_of(name, service, drift), navigation.get(name))
    lines.append('<EntityContainer Name="Container">')
    for set_name, type_name in sets.items():
        lines.append(f'<EntitySet Name="{set_name}" EntityType="{NAMESPACE}.{type_name}"/>')
    if service == "data":
        lines.append(f'<Singleton Name="userProfile" Type="{NAMESPACE}.userProfile"/>')
        lines.append(
            f'<FunctionImport Name="searchByCaseNumber" Function="{NAMESPACE}.searchByCaseNumber"/>'
        )
    else:
        lines.append(f'<FunctionImport Name="getProject" Function="{NAMESPACE}.getProject"/>')
    lines += ["</EntityContainer>"]
    if service == "data":
        lines += [
            '<Function Name="searchByCaseNumber">',
            '<Parameter Name="caseNumber" Type="Edm.String" Nullable="false"/>',
            f'<ReturnType Type="Collection({NAMESPACE}.case)"/>',
            "</Function>",
        ]
    else:
        lines += ['<Function Name="getProject">', '<ReturnType Type="Edm.String"/>', "</Function>"]
    lines += ["</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(lines)


def _entity_type(name: str, props: tuple[Prop, ...], nav: tuple[str, str] | None) -> list[str]:
    lines = [f'<EntityType Name="{name}">', f'<Key><PropertyRef Name="{KEYS[name]}"/></Key>']
    lines += [_property(p) for p in props]
    if nav:
        lines.append(
            f'<NavigationProperty Name="{nav[0]}" Type="Collection({NAMESPACE}.{nav[1]})"/>'
        )
    lines.append("</EntityType>")
    return lines


def _property(prop: Prop) -> str:
    facets = "" if prop.nullable else ' Nullable="false"'
    if prop.precision is not None:
        facets += f' Precision="{prop.precision}"'
    if prop.scale is not None:
        facets += f' Scale="{prop.scale}"'
    return f"<Property Name={quoteattr(prop.name)} Type={quoteattr(prop.edm)}{facets}/>"
