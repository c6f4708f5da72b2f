-- Schemas of the warehouse: raw tables land in bizagi, analytics views live in analytics.
-- Tables themselves are created from each stream's declared Arrow schema on first load.
CREATE SCHEMA IF NOT EXISTS bizagi;
CREATE SCHEMA IF NOT EXISTS analytics;
