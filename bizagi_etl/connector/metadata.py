"""A service's CSDL (``$metadata``): the declared entity types, sets and their properties.

``fetch_metadata`` GETs ``{service root}/$metadata`` once per client and service root and parses
it with ``parse_csdl``; ``ServiceMetadata.entity_type_for`` tells what entity type a resource
path returns, so its columns can be typed (and ordered) as declared rather than guessed.

The document comes from a server we do not control. It is parsed by the standard library's
ElementTree behind ``defusedxml``, with any DTD refused: CSDL never needs one, and a DTD is how
entity expansion bombs ("billion laughs") and external entities (``file:///etc/passwd``) get in.
A body over ``MAX_METADATA_BYTES`` is not parsed.

CSDL 4.0/4.01 (``http://docs.oasis-open.org/odata/ns/edm(x)``) and Microsoft's older CSDL 1-3
(``http://schemas.microsoft.com/ado/...``) are read alike: schemas with their aliases, entity
types with keys, ``BaseType`` inheritance (the base's properties first), ``Abstract``,
``OpenType``, navigation properties (with ``Type``, or the older ``Relationship``/``ToRole``),
complex and enumeration types, type definitions, entity sets and singletons.

A service without ``$metadata`` (404, 405, 406, 501), or with one that cannot be parsed, is
logged as a warning and gives ``None``: the caller types columns as it did before. Transport
and authentication errors propagate as from any other request.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bizagi_etl.connector.client import BizagiClient, RequestStats
from bizagi_etl.connector.errors import HTTPStatusError, SchemaError
from bizagi_etl.connector.redact import mask, redact_url

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

log = logging.getLogger(__name__)

__all__ = [
    "MAX_METADATA_BYTES",
    "ComplexType",
    "EntityType",
    "NavigationProperty",
    "Property",
    "ServiceMetadata",
    "entity_type_at",
    "fetch_metadata",
    "parse_csdl",
    "service_root",
]

EDMX_NAMESPACES = frozenset({
    "http://docs.oasis-open.org/odata/ns/edmx",  # CSDL 4.0 and 4.01
    "http://schemas.microsoft.com/ado/2007/06/edmx",  # OData 1-3 services
    "http://schemas.microsoft.com/ado/2008/10/edmx",  # Entity Framework 4
    "http://schemas.microsoft.com/ado/2009/11/edmx",  # Entity Framework 5+
})  # fmt: skip
EDM_NAMESPACES = frozenset({
    "http://docs.oasis-open.org/odata/ns/edm",  # CSDL 4.0 and 4.01
    "http://schemas.microsoft.com/ado/2009/11/edm",  # CSDL 3
    "http://schemas.microsoft.com/ado/2008/09/edm",  # CSDL 2
    "http://schemas.microsoft.com/ado/2008/01/edm",  # CSDL 1.2
    "http://schemas.microsoft.com/ado/2007/05/edm",  # CSDL 1.1
    "http://schemas.microsoft.com/ado/2006/04/edm",  # CSDL 1
})  # fmt: skip
MAX_METADATA_BYTES = 64 * 1024 * 1024  # large projects declare thousands of types; not more
NO_METADATA_STATUSES = frozenset({404, 405, 406, 501})  # the service has no (XML) $metadata
XML = "application/xml"
EXCERPT = 80  # characters of a document echoed in an error message

Kind = Literal["primitive", "enum", "complex", "entity", "unknown"]


# -- value objects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Property:
    """A structural property as declared.

    ``type`` is qualified, aliases resolved, without ``Collection(...)``: ``Edm.Decimal``,
    ``Bizagi.ParameterRef``; a property of a type definition carries its underlying type and
    facets. ``scale`` is a number, ``"variable"``, ``"floating"`` or ``None`` (not declared).
    ``kind`` says what ``type`` names: an ``Edm`` primitive, an enumeration, a complex or an
    entity type of the document, or something the document does not declare.
    """

    name: str
    type: str
    nullable: bool = True
    precision: int | None = None
    scale: int | str | None = None
    collection: bool = False
    kind: Kind = "primitive"

    @property
    def nested(self) -> bool:
        """A value that is a list or an object: kept as JSON text, not as a typed column."""
        return self.collection or self.kind in ("complex", "entity")


@dataclass(frozen=True, slots=True)
class NavigationProperty:
    name: str
    type: str  # the qualified entity type it leads to, aliases resolved
    collection: bool = False
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class EntityType:
    """An entity type with what it inherits: key and properties of its bases come first."""

    name: str  # qualified: Namespace.Name
    key: tuple[str, ...]
    properties: tuple[Property, ...]
    navigation: tuple[NavigationProperty, ...] = ()
    base_type: str | None = None
    abstract: bool = False
    open_type: bool = False

    def property_named(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)

    def navigation_named(self, name: str) -> NavigationProperty | None:
        return next((n for n in self.navigation if n.name == name), None)


@dataclass(frozen=True, slots=True)
class ComplexType:
    name: str  # qualified: Namespace.Name
    properties: tuple[Property, ...]
    base_type: str | None = None
    abstract: bool = False
    open_type: bool = False


@dataclass(frozen=True, slots=True)
class ServiceMetadata:
    """One parsed ``$metadata`` document. Mappings are read-only; names are qualified."""

    source: str  # where the document came from (a URL without credentials, or a label)
    version: str  # the Edmx Version attribute: 4.0, 4.01, 1.0, ...
    entity_types: Mapping[str, EntityType]
    complex_types: Mapping[str, ComplexType]
    entity_sets: Mapping[str, str]  # entity set -> entity type
    singletons: Mapping[str, str]  # singleton -> entity type
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def entity_type_for(self, path: str) -> EntityType | None:
        """The entity type of what ``path`` (relative to the service root) returns.

        ``Claims``, ``Claims(1)``, ``processes(<id>)/cases``, ``Me/Orders('a''b')/Lines``,
        ``Claims/NS.SpecialClaim`` (a type cast). Keys in parentheses of any form are skipped.
        ``None`` when a segment cannot be resolved (a function, ``$count``, a complex property,
        a name the document does not declare); never raises.
        """
        segments = _segments(path)
        if not segments:
            return None
        first, *rest = segments
        type_name = self.entity_sets.get(first) or self.singletons.get(first)
        current = self.entity_types.get(type_name) if type_name else None
        for name in rest:
            if current is None:
                return None
            current = self._step(current, name)
        return current

    def _step(self, current: EntityType, name: str) -> EntityType | None:
        nav = current.navigation_named(name)
        if nav is not None:
            return self.entity_types.get(nav.type)
        prop = current.property_named(name)
        if prop is not None:  # a property holding entities (declared so by some services)
            return self.entity_types.get(prop.type) if prop.kind == "entity" else None
        if "." in name:  # a type cast to a derived type
            return self.entity_types.get(_resolve_alias(name, self.aliases))
        return None


# -- parsing -----------------------------------------------------------------------------------


def parse_csdl(xml: bytes, source: str) -> ServiceMetadata:
    """Parse a CSDL XML document; ``SchemaError`` if it is not well-formed XML or not CSDL."""
    root = _safe_root(xml, source)
    return _Reader(root, source).read()


def _safe_root(xml: bytes, source: str) -> Element:
    try:
        root: Element = SafeET.fromstring(
            xml, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise SchemaError(
            f"$metadata from {source}: refused a document type declaration or entities "
            f"({type(exc).__name__}); expected plain CSDL XML, which never needs them "
            "(they are how entity expansion bombs and external entities get in)"
        ) from None
    except SafeET.ParseError as exc:
        raise SchemaError(
            f"$metadata from {source}: not well-formed XML ({exc}); expected a CSDL "
            f"document, got {_excerpt(xml)!r}"
        ) from None
    return root


def _excerpt(xml: bytes) -> str:
    text = mask(" ".join(xml[: EXCERPT * 4].decode("utf-8", "replace").split()))
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def _split_tag(tag: str) -> tuple[str, str]:
    """``{namespace}Local`` -> (namespace, Local)."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _resolve_alias(name: str, aliases: Mapping[str, str]) -> str:
    qualifier, dot, local = name.rpartition(".")
    if not dot:
        return name
    return f"{aliases.get(qualifier, qualifier)}.{local}"


class _Reader:
    """Two passes: collect every schema's declarations, then build types with what they use."""

    def __init__(self, root: Element, source: str) -> None:
        self.root = root
        self.source = source
        self.aliases: dict[str, str] = {}
        self.declared: dict[str, tuple[str, Element, str]] = {}  # name -> (kind, element, ns)
        self.associations: dict[str, Element] = {}  # CSDL 1-3
        self.containers: list[tuple[Element, str]] = []
        self.entity_types: dict[str, EntityType] = {}
        self.complex_types: dict[str, ComplexType] = {}
        self.building: set[str] = set()

    def fail(self, message: str) -> SchemaError:
        return SchemaError(f"$metadata from {self.source}: {message}")

    def read(self) -> ServiceMetadata:
        namespace, local = _split_tag(self.root.tag)
        if local != "Edmx" or namespace not in EDMX_NAMESPACES:
            raise self.fail(
                f"not CSDL: expected the root element edmx:Edmx of an OData edmx namespace, "
                f"got <{local}> in {namespace or 'no namespace'!r}"
            )
        schemas = self._schemas(namespace)
        for schema, ns in schemas:
            self._collect(schema, ns)
        for name, (kind, _, _) in self.declared.items():
            if kind == "EntityType":
                self._entity_type(name)
            elif kind == "ComplexType":
                self._complex_type(name)
        entity_sets: dict[str, str] = {}
        singletons: dict[str, str] = {}
        for container, ns in self.containers:
            for child in container:
                cns, local = _split_tag(child.tag)
                if cns != ns or local not in ("EntitySet", "Singleton"):
                    continue
                name = self._attr(child, "Name")
                target = self._attr(child, "EntityType" if local == "EntitySet" else "Type")
                found = entity_sets if local == "EntitySet" else singletons
                found.setdefault(name, _resolve_alias(target, self.aliases))
        return ServiceMetadata(
            source=self.source,
            version=self.root.get("Version", ""),
            entity_types=MappingProxyType(self.entity_types),
            complex_types=MappingProxyType(self.complex_types),
            entity_sets=MappingProxyType(entity_sets),
            singletons=MappingProxyType(singletons),
            aliases=MappingProxyType(self.aliases),
        )

    def _schemas(self, edmx: str) -> list[tuple[Element, str]]:
        services = [c for c in self.root if c.tag == f"{{{edmx}}}DataServices"]
        if len(services) != 1:
            raise self.fail(f"not CSDL: expected one edmx:DataServices, got {len(services)}")
        for reference in self.root.iter(f"{{{edmx}}}Include"):  # aliases of referenced documents
            alias, namespace = reference.get("Alias"), reference.get("Namespace")
            if alias and namespace:
                self.aliases.setdefault(alias, namespace)
        schemas = []
        for child in services[0]:
            ns, local = _split_tag(child.tag)
            if local == "Schema" and ns in EDM_NAMESPACES:
                schemas.append((child, ns))
        if not schemas:
            raise self.fail("not CSDL: expected at least one Schema in edmx:DataServices, got none")
        for schema, _ in schemas:
            namespace = self._attr(schema, "Namespace")
            alias = schema.get("Alias")
            if alias:
                self.aliases[alias] = namespace
        return schemas

    def _collect(self, schema: Element, ns: str) -> None:
        namespace = self._attr(schema, "Namespace")
        for child in schema:
            cns, local = _split_tag(child.tag)
            if cns != ns:
                continue  # annotations of other vocabularies
            if local in ("EntityType", "ComplexType", "EnumType", "TypeDefinition"):
                name = f"{namespace}.{self._attr(child, 'Name')}"
                self.declared.setdefault(name, (local, child, ns))
            elif local == "Association":
                self.associations[f"{namespace}.{self._attr(child, 'Name')}"] = child
            elif local == "EntityContainer":
                self.containers.append((child, ns))

    def _attr(self, element: Element, name: str) -> str:
        value = element.get(name)
        if value is None or not value.strip():
            _, local = _split_tag(element.tag)
            label = element.get("Name")
            where = f"<{local} Name={label!r}>" if label else f"<{local}>"
            raise self.fail(f"{where} lacks the attribute {name}")
        return value.strip()

    def _base(self, name: str, element: Element, kind: str) -> str | None:
        base = element.get("BaseType")
        if not base:
            return None
        base = _resolve_alias(base.strip(), self.aliases)
        declared = self.declared.get(base)
        if declared is None or declared[0] != kind:
            raise self.fail(f"the BaseType {base!r} of {kind} {name!r} is not a declared {kind}")
        if base in self.building:
            raise self.fail(f"the BaseType chain of {kind} {name!r} loops through {base!r}")
        return base

    def _entity_type(self, name: str) -> EntityType:
        if name in self.entity_types:
            return self.entity_types[name]
        _, element, ns = self.declared[name]
        self.building.add(name)
        base_name = self._base(name, element, "EntityType")
        base = self._entity_type(base_name) if base_name else None
        self.building.discard(name)
        key = tuple(
            self._attr(ref, "Name")
            for key in element.findall(f"{{{ns}}}Key")
            for ref in key.findall(f"{{{ns}}}PropertyRef")
        )
        built = EntityType(
            name=name,
            key=key or (base.key if base else ()),
            properties=(base.properties if base else ()) + self._properties(element, ns),
            navigation=(base.navigation if base else ()) + self._navigation(element, ns),
            base_type=base_name,
            abstract=_true(element.get("Abstract")),
            open_type=_true(element.get("OpenType")) or bool(base and base.open_type),
        )
        self.entity_types[name] = built
        return built

    def _complex_type(self, name: str) -> ComplexType:
        if name in self.complex_types:
            return self.complex_types[name]
        _, element, ns = self.declared[name]
        self.building.add(name)
        base_name = self._base(name, element, "ComplexType")
        base = self._complex_type(base_name) if base_name else None
        self.building.discard(name)
        built = ComplexType(
            name=name,
            properties=(base.properties if base else ()) + self._properties(element, ns),
            base_type=base_name,
            abstract=_true(element.get("Abstract")),
            open_type=_true(element.get("OpenType")) or bool(base and base.open_type),
        )
        self.complex_types[name] = built
        return built

    def _properties(self, element: Element, ns: str) -> tuple[Property, ...]:
        return tuple(self._property(p) for p in element.findall(f"{{{ns}}}Property"))

    def _property(self, element: Element) -> Property:
        name = self._attr(element, "Name")
        type_name, collection = self._type(self._attr(element, "Type"))
        precision = self._precision(element, name)
        scale = self._scale(element, name)
        kind: Kind = "primitive" if type_name.startswith("Edm.") else "unknown"
        declared = self.declared.get(type_name)
        if declared is not None:
            if declared[0] == "TypeDefinition":  # its underlying type with its facets
                definition = declared[1]
                type_name = _resolve_alias(self._attr(definition, "UnderlyingType"), self.aliases)
                kind = "primitive" if type_name.startswith("Edm.") else "unknown"
                precision = self._precision(definition, name) if precision is None else precision
                scale = self._scale(definition, name) if scale is None else scale
            else:
                kind = _KIND_OF[declared[0]]
        return Property(
            name=name,
            type=type_name,
            nullable=element.get("Nullable", "true").strip().lower() != "false",
            precision=precision,
            scale=scale,
            collection=collection,
            kind=kind,
        )

    def _type(self, text: str) -> tuple[str, bool]:
        """(qualified element type, is a collection)."""
        inner = text.strip()
        collection = inner.startswith("Collection(") and inner.endswith(")")
        if collection:
            inner = inner[len("Collection(") : -1].strip()
        return _resolve_alias(inner, self.aliases), collection

    def _precision(self, element: Element, prop: str) -> int | None:
        text = element.get("Precision")
        if text is None or not text.strip():
            return None
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise self.fail(
                f"property {prop!r}: expected Precision to be a whole number, got {text[:20]!r}"
            )
        return value

    def _scale(self, element: Element, prop: str) -> int | str | None:
        text = element.get("Scale")
        if text is None or not text.strip():
            return None
        word = text.strip().lower()
        if word in ("variable", "floating"):
            return word
        try:
            value = int(word)
        except ValueError:
            value = -1
        if value < 0:
            raise self.fail(
                f"property {prop!r}: expected Scale to be a whole number, 'variable' or "
                f"'floating', got {text[:20]!r}"
            )
        return value

    def _navigation(self, element: Element, ns: str) -> tuple[NavigationProperty, ...]:
        found = []
        for nav in element.findall(f"{{{ns}}}NavigationProperty"):
            name = self._attr(nav, "Name")
            if nav.get("Type"):
                target, collection = self._type(self._attr(nav, "Type"))
            else:
                target, collection = self._association_end(nav, name)
            nullable = nav.get("Nullable", "true").strip().lower() != "false"
            found.append(NavigationProperty(name, target, collection, nullable))
        return tuple(found)

    def _association_end(self, nav: Element, name: str) -> tuple[str, bool]:
        """CSDL 1-3: the type and multiplicity of the association end ``ToRole`` names."""
        relationship = _resolve_alias(self._attr(nav, "Relationship"), self.aliases)
        role = self._attr(nav, "ToRole")
        association = self.associations.get(relationship)
        ends = [] if association is None else [
            e for e in association if _split_tag(e.tag)[1] == "End" and e.get("Role") == role
        ]  # fmt: skip
        if not ends:
            raise self.fail(
                f"navigation property {name!r}: expected Association {relationship!r} with an "
                f"End of Role {role!r}, found none"
            )
        target = _resolve_alias(self._attr(ends[0], "Type"), self.aliases)
        return target, ends[0].get("Multiplicity", "").strip() == "*"


_KIND_OF: dict[str, Kind] = {"EntityType": "entity", "ComplexType": "complex", "EnumType": "enum"}


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


# -- paths -------------------------------------------------------------------------------------


def _split_segments(path: str) -> list[str] | None:
    """``a(1)/b('x/y')`` -> [``a(1)``, ``b('x/y')``]: slashes inside keys do not split.
    ``None`` when parentheses or quotes do not balance."""
    text = unquote(path.split("?", 1)[0]).strip().strip("/")
    segments: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted  # '' inside a string toggles twice: still inside
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif not quoted and depth == 0 and char == "/":
            segments.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth or quoted:
        return None
    segments.append("".join(current))
    return [s for s in segments if s]


def _segments(path: str) -> list[str]:
    """The names of a path's segments, keys dropped; [] when the path does not parse."""
    raw = _split_segments(path)
    if raw is None:
        return []
    names = []
    for segment in raw:
        name, paren, rest = segment.partition("(")
        if paren and not rest.endswith(")"):
            return []  # text after a key, as in a(1)x
        names.append(name.strip())
    return names


def service_root(path: str) -> str:
    """The service a resource path (relative to the base URL) belongs to.

    ``odata/<service>/...`` (Bizagi, and what the project's streams must use): the first two
    segments, ``odata/data/processes(<id>)/cases`` -> ``odata/data``. Any other path: the
    segments before the one that carries the first key, or, without a key, all but the last:
    ``api/v4/Claims`` and ``api/v4/Claims(1)/Lines`` -> ``api/v4``. (A keyless path through a
    singleton such as ``api/v4/Me/Orders`` cannot be told apart from a deeper root this way.)
    """
    return _split(path)[0]


def _split(path: str) -> tuple[str, str]:
    """(service root, path relative to it)."""
    raw = _split_segments(path) or []
    if len(raw) >= 2 and raw[0] == "odata":
        cut = 2
    else:
        keyed = next((i for i, s in enumerate(raw) if "(" in s), None)
        cut = keyed if keyed is not None else max(len(raw) - 1, 0)
    return "/".join(raw[:cut]), "/".join(raw[cut:])


# -- fetching and caching ----------------------------------------------------------------------


class _Slot:
    """One client's answer for one service root; its lock makes concurrent callers wait for
    the first one's request instead of sending their own."""

    __slots__ = ("done", "lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: ServiceMetadata | None = None


# Client -> service root -> slot. Weak keys: an entry lives exactly as long as its client (a
# run), and a new client starts without one.
_CACHE: weakref.WeakKeyDictionary[BizagiClient, dict[str, _Slot]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def fetch_metadata(
    client: BizagiClient, service_root: str, stats: RequestStats | None = None
) -> ServiceMetadata | None:
    """The parsed ``$metadata`` of a service root such as ``odata/data``, once per client.

    ``None`` (logged as a warning, and remembered) when the service has none or it cannot be
    parsed; other errors (transport, authentication, server) propagate after the client's
    retries and are not remembered. ``stats`` counts the request, when one is sent.
    """
    root = service_root.strip().strip("/")
    with _CACHE_LOCK:
        slot = _CACHE.setdefault(client, {}).setdefault(root, _Slot())
    with slot.lock:
        if not slot.done:
            slot.value = _fetch(client, root, stats)
            slot.done = True
        return slot.value


def entity_type_at(client: BizagiClient, path: str) -> EntityType | None:
    """The declared entity type of what ``path`` (under the base URL) returns, or ``None``."""
    root, rest = _split(path)
    metadata = fetch_metadata(client, root)
    return metadata.entity_type_for(rest) if metadata is not None else None


def _fetch(client: BizagiClient, root: str, stats: RequestStats | None) -> ServiceMetadata | None:
    url = client.url(f"{root}/$metadata" if root else "$metadata")
    shown = redact_url(url)
    try:
        document = client.get_bytes(url, XML, stats)
        if len(document) > MAX_METADATA_BYTES:
            raise SchemaError(
                f"$metadata from {shown}: expected at most {MAX_METADATA_BYTES:,} bytes, got "
                f"{len(document):,}"
            )
        return parse_csdl(document, shown)
    except HTTPStatusError as error:
        if error.status not in NO_METADATA_STATUSES:
            raise
        log.warning(
            "GET %s answered HTTP %d: the service has no $metadata; columns are typed from "
            "the stream declarations and the values, as without it",
            shown, error.status,
        )  # fmt: skip
    except SchemaError as error:
        log.warning("%s; columns are typed from the stream declarations and the values", error)
    return None
