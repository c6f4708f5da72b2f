"""Words the generated data is made of.

Deliberately hostile to careless code: accents, CJK, emoji, quotes of both kinds, commas,
newlines, tabs, percent signs and markup, as real Bizagi text fields hold.
"""

from __future__ import annotations

WORDS = (
    "approved", "pending review", "Bogotá", "São Paulo", "Zürich", "Ærøskøbing", "naïve café",
    "北京市", "東京都", "서울", "Ελληνικά", "Привет", "مرحبا", "O'Brien", 'say "hello"',
    "a, b, c", "line one\nline two", "🚀 launch", "👍", "tab\tseparated", "100% sure",
    "C:\\temp\\file.txt", "<b>bold</b>", "Smith & Sons", "urgent", "quarterly", "invoice",
    "delivery", "customer", "request", "follow-up", "second attempt", "ünïcödé", "façade",
    "résumé", "piñata", "Ångström", "€ 1.000,50", "¥", "£ sterling", "emoji 🎉🎉", "日本語テキスト",
    "중요", "plain text", "see attached", "N/A", "—", "semi;colon", "it's fine", "'single'",
)  # fmt: skip

FIRST_NAMES = (
    "José", "María", "François", "Zoë", "Jürgen", "Søren", "Łukasz", "Ana", "John", "Priya",
    "Wei", "Yuki", "Olusegun", "Ahmed", "Chloé", "Renée", "Björn", "Siobhán", "Nguyễn", "Li",
)  # fmt: skip

LAST_NAMES = (
    "García", "Müller", "O'Connor", "Smith", "Dubois", "Kowalski", "Østergaard", "Silva",
    "Rossi", "Patel", "Wang", "Tanaka", "Adeyemi", "Hassan", "Nuñez", "van der Berg", "李",
)  # fmt: skip

COMPANIES = (
    "Acme, Inc.", "Globex S.A.", "Initech GmbH", "Umbrella Corp", "Soylent \"Green\" Ltd",
    "Stark Industries", "Wayne Enterprises", "株式会社テスト", "Café Müller & Co.",
    "Tyrell Corporation", "Cyberdyne Systems", "Hooli", "Pied Piper", "Vandelay Industries",
)  # fmt: skip

CATEGORIES = (
    "Travel", "Meals", "Hardware", "Software", "Network", "Access", "Training", "Office",
    "Logistics", "Maintenance",
)  # fmt: skip

CHANNELS = ("Phone", "Email", "Web", "Store", "Social media", "Chat")

POSITIONS = (
    "Analyst", "Engineer", "Sales representative", "Accountant", "Designer", "Support agent",
    "Project manager", "Data scientist",
)  # fmt: skip

COUNTRIES = (
    ("AR", "Argentina"), ("AT", "Österreich"), ("AU", "Australia"), ("BE", "Belgique"),
    ("BR", "Brasil"), ("CA", "Canada"), ("CH", "Schweiz"), ("CL", "Chile"), ("CN", "中国"),
    ("CO", "Colombia"), ("CR", "Costa Rica"), ("CZ", "Česko"), ("DE", "Deutschland"),
    ("DK", "Danmark"), ("DO", "República Dominicana"), ("EC", "Ecuador"), ("EG", "مصر"),
    ("ES", "España"), ("FI", "Suomi"), ("FR", "France"), ("GB", "United Kingdom"),
    ("GR", "Ελλάδα"), ("GT", "Guatemala"), ("HK", "香港"), ("HU", "Magyarország"),
    ("ID", "Indonesia"), ("IE", "Éire"), ("IL", "ישראל"), ("IN", "भारत"), ("IS", "Ísland"),
    ("IT", "Italia"), ("JP", "日本"), ("KE", "Kenya"), ("KR", "대한민국"), ("LU", "Luxembourg"),
    ("MA", "Maroc"), ("MX", "México"), ("MY", "Malaysia"), ("NG", "Nigeria"), ("NL", "Nederland"),
    ("NO", "Norge"), ("NZ", "New Zealand"), ("PA", "Panamá"), ("PE", "Perú"), ("PH", "Pilipinas"),
    ("PL", "Polska"), ("PT", "Portugal"), ("PY", "Paraguay"), ("RO", "România"), ("RU", "Россия"),
    ("SA", "السعودية"), ("SE", "Sverige"), ("SG", "Singapore"), ("SK", "Slovensko"),
    ("TH", "ประเทศไทย"), ("TR", "Türkiye"), ("TW", "臺灣"), ("UA", "Україна"),
    ("US", "United States"),
    ("UY", "Uruguay"), ("VE", "Venezuela"), ("VN", "Việt Nam"), ("ZA", "South Africa"),
    ("SV", "El Salvador"),
)  # fmt: skip

CURRENCIES = (
    ("USD", "US dollar"), ("EUR", "Euro"), ("GBP", "Pound sterling"), ("JPY", "日本円"),
    ("CNY", "人民币"), ("COP", "Peso colombiano"), ("MXN", "Peso mexicano"),
    ("BRL", "Real brasileiro"),
    ("ARS", "Peso argentino"), ("CLP", "Peso chileno"), ("PEN", "Sol peruano"), ("CHF", "Franken"),
    ("SEK", "Svensk krona"), ("NOK", "Norsk krone"), ("DKK", "Dansk krone"), ("PLN", "Złoty"),
    ("CZK", "Koruna česká"), ("HUF", "Forint"), ("TRY", "Türk lirası"), ("INR", "भारतीय रुपया"),
    ("KRW", "원"), ("AUD", "Australian dollar"), ("CAD", "Canadian dollar"), ("NZD", "NZ dollar"),
    ("ZAR", "Rand"), ("SGD", "Singapore dollar"), ("HKD", "港元"), ("ILS", "שקל"),
    ("RUB", "Рубль"), ("THB", "บาท"),
)  # fmt: skip

DEPARTMENTS = (
    ("FIN", "Finanzas"), ("HR", "Human Resources"), ("IT", "Information Technology"),
    ("OPS", "Operations"), ("LEG", "Legal & Compliance"), ("MKT", "Marketing"), ("SAL", "Sales"),
    ("PRC", "Procurement"), ("RND", "R&D"), ("CS", "Customer Service"), ("LOG", "Logística"),
    ("QA", "Quality"), ("SEC", "Security"), ("FAC", "Facilities"), ("TRE", "Treasury"),
    ("AUD", "Internal Audit"), ("PMO", "Project Office"), ("DAT", "Data & Analytics"),
)  # fmt: skip

PRODUCT_NOUNS = (
    "Widget", "Gadget", "Sensor", "Valve", "Cable", "Bracket", "Pump", "Módulo", "Adapter",
    "Filter", "Panel", "Motor", "Lámpara", "ケーブル", "Gearbox", "Switch", "Router", "Battery",
)  # fmt: skip

PRODUCT_ADJECTIVES = (
    "Compact", "Heavy-duty", "Ultra", "Mini", "Pro", "Eco", "Smart", "Classic", "Turbo",
    "Silent", "Rugged", "Premium", "Basic", "Ñandú", "Größe-XL", "Super \"Max\"",
)  # fmt: skip
