-- The rows of the newest snapshot of each built-in snapshot stream, one per key: a row the
-- source no longer has (a deleted stakeholder, a case that left the inbox) is not "latest".
-- Parameter-entity tables (entity_*) and custom snapshot streams get the same view,
-- analytics.latest_<table>, from bizagi_etl.pipeline.Warehouse.create_latest_view.

CREATE OR REPLACE VIEW analytics.latest_processes AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY _extracted_at DESC) AS _rank
    FROM bizagi.processes
    WHERE _partition = (SELECT max(_partition) FROM bizagi.processes)
) WHERE _rank = 1;

CREATE OR REPLACE VIEW analytics.latest_stakeholders AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY _extracted_at DESC) AS _rank
    FROM bizagi.stakeholders
    WHERE _partition = (SELECT max(_partition) FROM bizagi.stakeholders)
) WHERE _rank = 1;

CREATE OR REPLACE VIEW analytics.latest_entities AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY _extracted_at DESC) AS _rank
    FROM bizagi.entities
    WHERE _partition = (SELECT max(_partition) FROM bizagi.entities)
) WHERE _rank = 1;

CREATE OR REPLACE VIEW analytics.latest_inbox AS
SELECT * EXCLUDE (_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY _extracted_at DESC) AS _rank
    FROM bizagi.inbox
    WHERE _partition = (SELECT max(_partition) FROM bizagi.inbox)
) WHERE _rank = 1;
