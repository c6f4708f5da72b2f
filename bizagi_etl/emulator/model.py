"""The emulated project's model: processes, their parameters, parameter entities, stakeholders.

Plain declarations; ``dataset`` turns them into rows. Type names are Bizagi's (reference §3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    """One attribute: a case parameter of a process, or a column of a parameter entity."""

    name: str  # display name
    attr: str  # xpath of the attribute inside its entity
    type: str  # Bizagi data type
    gen: str  # how values are drawn: see dataset.draw_values
    null_share: float = 0.05  # share of null values
    empty_share: float = 0.0  # share of "" values (text only)


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    display: str


@dataclass(frozen=True, slots=True)
class Process:
    name: str
    display: str
    prefix: str  # caseNumber prefix, e.g. VAC-1042
    weight: float  # share of the history's cases
    sla_hours: int  # estimatedSolutionDate = creationDate + sla_hours
    params: tuple[Param, ...]
    tasks: tuple[Task, ...]
    with_files: bool = False  # cases carry an {"xpath": "Attachment", "files": []} parameter
    # The clock (``timeline``): attributes null until a task of the case completes ...
    decided: tuple[str, ...] = ()
    # ... and attributes that change once more, when a later task completes (some cases only).
    revised: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    display: str
    size: int  # number of values
    columns: tuple[Param, ...]


@dataclass(frozen=True, slots=True)
class Stakeholder:
    name: str
    display: str
    icon: str


def _text(name: str, attr: str, gen: str = "text", type_: str = "VarChar") -> Param:
    return Param(name, attr, type_, gen, null_share=0.04, empty_share=0.04)


PROCESSES: tuple[Process, ...] = (
    Process(
        "VacationRequest", "Vacation request", "VAC", 0.14, 120,
        (
            Param("Start date", "StartDate", "DateTime", "date:3:60"),
            Param("Days", "Days", "Int", "int:1:21"),
            Param("Approved", "Approved", "Boolean", "bool", null_share=0.3),
            _text("Reason", "Reason", "text", "Text"),
            Param("Department", "Department", "Entity", "entity:Department"),
        ),
        (Task("RequestVacation", "Request vacation"), Task("ApproveRequest", "Approve request"),
         Task("RegisterAbsence", "Register absence")),
        with_files=True,
        decided=("Approved",), revised=("Days",),
    ),
    Process(
        "PurchaseOrder", "Purchase order", "PO", 0.12, 240,
        (
            _text("Supplier", "Supplier", "company", "NVarChar"),
            Param("Amount", "Amount", "Money", "money:50:250000"),
            Param("Currency", "Currency", "Entity", "entity:Currency"),
            Param("Quantity", "Quantity", "Int", "int:1:5000"),
            Param("Delivery date", "DeliveryDate", "DateTime", "date:5:90"),
            Param("Urgent", "Urgent", "Boolean", "bool"),
            _text("Notes", "Notes", "text", "Text"),
        ),
        (Task("CreateOrder", "Create order"), Task("ApproveOrder", "Approve order"),
         Task("SendToSupplier", "Send to supplier"), Task("ReceiveGoods", "Receive goods")),
        decided=("DeliveryDate",), revised=("Amount",),
    ),
    Process(
        "ExpenseReport", "Expense report", "EXP", 0.11, 96,
        (
            Param("Amount", "Amount", "Money", "money:5:12000"),
            _text("Category", "Category", "category"),
            Param("Country", "Country", "Entity", "entity:Country"),
            Param("Receipts", "Receipts", "TinyInt", "int:0:30"),
            _text("Description", "Description", "text", "NText"),
        ),
        (Task("SubmitExpenses", "Submit expenses"), Task("ReviewExpenses", "Review expenses"),
         Task("Reimburse", "Reimburse")),
        with_files=True,
        decided=("Receipts",), revised=("Amount",),
    ),
    Process(
        "CustomerComplaint", "Customer complaint", "CMP", 0.10, 72,
        (
            _text("Customer name", "CustomerName", "person", "NVarChar"),
            _text("Channel", "Channel", "channel"),
            Param("Severity", "Severity", "SmallInt", "int:1:5"),
            Param("Product", "Product", "Entity", "entity:Product"),
            _text("Description", "Description", "text", "Text"),
            Param("Resolved", "Resolved", "Boolean", "bool"),
        ),
        (Task("RegisterComplaint", "Register complaint"), Task("Investigate", "Investigate"),
         Task("RespondToCustomer", "Respond to customer")),
        decided=("Resolved",), revised=("Severity",),
    ),
    Process(
        "LoanApplication", "Loan application", "LOAN", 0.08, 336,
        (
            _text("Applicant name", "ApplicantName", "person", "NVarChar"),
            Param("Amount", "Amount", "Decimal", "decimal:1000:500000"),
            Param("Term (months)", "TermMonths", "Int", "int:6:361"),
            Param("Interest rate", "InterestRate", "Float", "float:0.5:19.5"),
            Param("Approved", "Approved", "Boolean", "bool", null_share=0.25),
            Param("Country", "Country", "Entity", "entity:Country"),
        ),
        (Task("CaptureApplication", "Capture application"), Task("CreditScoring", "Credit scoring"),
         Task("RiskReview", "Risk review"), Task("Disburse", "Disburse")),
        decided=("Approved", "InterestRate"), revised=("Amount",),
    ),
    Process(
        "EmployeeOnboarding", "Employee onboarding", "ONB", 0.06, 480,
        (
            _text("Employee name", "EmployeeName", "person", "NVarChar"),
            Param("Start date", "StartDate", "DateTime", "date:7:45"),
            Param("Department", "Department", "Entity", "entity:Department"),
            _text("Position", "Position", "position"),
            Param("Remote", "Remote", "Boolean", "bool"),
        ),
        (Task("PrepareContract", "Prepare contract"), Task("SetUpAccounts", "Set up accounts"),
         Task("WelcomeSession", "Welcome session")),
        decided=("Remote",), revised=("StartDate",),
    ),
    Process(
        "ITIncident", "IT incident", "INC", 0.13, 24,
        (
            _text("Summary", "Summary", "text", "NVarChar"),
            Param("Priority", "Priority", "TinyInt", "int:1:5"),
            Param("Affected users", "AffectedUsers", "BigInt", "bigint"),
            _text("Category", "Category", "category"),
            Param("Reported at", "ReportedAt", "DateTime", "date:0:1"),
        ),
        (Task("LogIncident", "Log incident"), Task("Diagnose", "Diagnose"),
         Task("Resolve", "Resolve"), Task("CloseIncident", "Close incident")),
        decided=("Category",), revised=("Priority",),
    ),
    Process(
        "ContractApproval", "Contract approval", "CTR", 0.05, 360,
        (
            _text("Counterparty", "Counterparty", "company", "NVarChar"),
            Param("Value", "Value", "Money", "money:1000:5000000"),
            Param("Currency", "Currency", "Entity", "entity:Currency"),
            Param("Signed date", "SignedDate", "DateTime", "date:1:120", null_share=0.3),
            Param("Auto renew", "AutoRenew", "Boolean", "bool"),
        ),
        (Task("DraftContract", "Draft contract"), Task("LegalReview", "Legal review"),
         Task("Sign", "Sign")),
        decided=("SignedDate",), revised=("Value",),
    ),
    Process(
        "TravelRequest", "Travel request", "TRV", 0.07, 96,
        (
            Param("Destination", "Destination", "Entity", "entity:Country"),
            Param("Departure date", "DepartureDate", "DateTime", "date:3:60"),
            Param("Return date", "ReturnDate", "DateTime", "date:4:75"),
            Param("Budget", "Budget", "Money", "money:100:15000"),
            _text("Purpose", "Purpose", "text", "Text"),
        ),
        (Task("RequestTravel", "Request travel"), Task("ApproveTravel", "Approve travel"),
         Task("BookTickets", "Book tickets")),
        decided=("ReturnDate",), revised=("Budget",),
    ),
    Process(
        "InvoiceProcessing", "Invoice processing", "INV", 0.09, 168,
        (
            _text("Invoice number", "InvoiceNumber", "invoice"),
            Param("Amount", "Amount", "Money", "money:10:90000"),
            Param("Due date", "DueDate", "DateTime", "date:10:60"),
            Param("Paid", "Paid", "Boolean", "bool"),
            _text("Supplier", "Supplier", "company", "NVarChar"),
        ),
        (Task("ReceiveInvoice", "Receive invoice"), Task("MatchOrder", "Match order"),
         Task("ApprovePayment", "Approve payment"), Task("Pay", "Pay")),
        decided=("Paid",), revised=("DueDate",),
    ),
    Process(
        "ChangeRequest", "Change request", "CHG", 0.03, 200,
        (
            _text("Title", "Title", "text", "NVarChar"),
            Param("Risk", "Risk", "Real", "float:0:1"),
            Param("Impacted systems", "ImpactedSystems", "SmallInt", "int:1:40"),
            Param("Emergency", "Emergency", "Boolean", "bool"),
            Param("Planned date", "PlannedDate", "SmallDateTime", "date:1:30"),
        ),
        (Task("DescribeChange", "Describe change"), Task("CabReview", "CAB review"),
         Task("Implement", "Implement")),
        decided=("Risk",), revised=("PlannedDate",),
    ),
    Process(
        "ClaimsHandling", "Claims handling", "CLM", 0.02, 720,
        (
            _text("Policy number", "PolicyNumber", "invoice", "Char"),
            Param("Claimed amount", "ClaimedAmount", "Numeric", "decimal:100:80000"),
            Param("Incident date", "IncidentDate", "DateTime", "date:-60:0"),
            Param("Product", "Product", "Entity", "entity:Product"),
            Param("Fraudulent", "Fraudulent", "Boolean", "bool", null_share=0.5),
        ),
        (Task("FileClaim", "File claim"), Task("AssessDamage", "Assess damage"),
         Task("Settle", "Settle")),
        decided=("Fraudulent",), revised=("ClaimedAmount",),
    ),
)  # fmt: skip

# Cases created on or after --drift-date carry these on top of their process's own fields.
DRIFT_PARAM = Param("Risk score", "RiskScore", "Float", "float:0:100", null_share=0.1)
DRIFT_ATTRIBUTE = "priority"  # a new top-level case attribute, a string
DRIFT_PRIORITIES = ("Low", "Normal", "High", "Critical")

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "Country", "Country", 64,
        (
            Param("Code", "Code", "VarChar", "country_code", null_share=0.0),
            Param("Name", "Name", "NVarChar", "country_name", null_share=0.0),
            Param("Population", "Population", "BigInt", "bigint"),
            Param("Area (km²)", "AreaKm2", "Float", "float:300:9000000"),
            Param("EU member", "EUMember", "Boolean", "bool"),
        ),
    ),
    Entity(
        "Currency", "Currency", 30,
        (
            Param("Code", "Code", "Char", "currency_code", null_share=0.0),
            Param("Name", "Name", "NVarChar", "currency_name", null_share=0.0),
            Param("Rate to USD", "RateToUSD", "Decimal", "decimal:0.001:20"),
            Param("Decimals", "Decimals", "TinyInt", "int:0:4"),
        ),
    ),
    Entity(
        "Department", "Department", 18,
        (
            Param("Code", "Code", "VarChar", "department_code", null_share=0.0),
            Param("Name", "Name", "NVarChar", "department_name", null_share=0.0),
            Param("Budget", "Budget", "Money", "money:10000:9000000"),
            _text("Manager", "Manager", "person", "NVarChar"),
            Param("Created", "Created", "DateTime", "date:-3000:-30"),
        ),
    ),
    Entity(
        "Product", "Product", 100_000,
        (
            Param("SKU", "SKU", "VarChar", "sku", null_share=0.0),
            _text("Name", "Name", "product", "NVarChar"),
            Param("Price", "Price", "Money", "money:1:5000"),
            Param("Weight (kg)", "WeightKg", "Real", "float:0.01:250"),
            Param("Stock", "Stock", "Int", "int:0:100000"),
            Param("Launch date", "LaunchDate", "DateTime", "date:-2500:0"),
            Param("Discontinued", "Discontinued", "Boolean", "bool"),
        ),
    ),
)  # fmt: skip

STAKEHOLDERS: tuple[Stakeholder, ...] = (
    Stakeholder("Employee", "Employee", "person"),
    Stakeholder("Manager", "Manager", "supervisor_account"),
    Stakeholder("Customer", "Customer", "storefront"),
    Stakeholder("Supplier", "Supplier", "local_shipping"),
    Stakeholder("Auditor", "Auditor", "fact_check"),
)

BOUND_USER = {
    "userName": "etl.service",
    "domain": "acme",
    "fullName": "ETL Service Account",
    "email": "etl.service@acme.example",
    "userInits": "ES",
}
PROJECT_NAME = "Acme Operations (emulated)"
