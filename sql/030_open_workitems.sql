-- Open workitems by task and state (red, yellow, green) in the latest inbox snapshot.
CREATE OR REPLACE VIEW analytics.open_workitems AS
SELECT
    task_display_name AS task,
    state,
    count(*) AS workitems,
    count(DISTINCT case_id) AS cases
FROM bizagi.inbox_workitems
WHERE _partition = (SELECT max(_partition) FROM bizagi.inbox_workitems)
GROUP BY task, state;
