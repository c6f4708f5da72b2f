-- Cases created per process per day (UTC days: a case's partition is its creation day).
CREATE OR REPLACE VIEW analytics.cases_per_process_day AS
SELECT
    process_name,
    CAST(_partition AS DATE) AS day,
    count(*) AS cases,
    count(*) FILTER (WHERE closed) AS closed_cases,
    count(*) FILTER (WHERE NOT closed) AS open_cases
FROM bizagi.cases
GROUP BY process_name, day;
