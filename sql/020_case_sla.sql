-- Cycle time and SLA status of each case against its estimatedSolutionDate, as of extraction:
--   closed: 'on time' if solved by the estimate, else 'overdue';
--   open:   'overdue' past the estimate, 'at risk' in the last 20 % of its SLA, else 'on time'.
CREATE OR REPLACE VIEW analytics.case_sla AS
SELECT
    id,
    case_number,
    process_name,
    creation_date,
    estimated_solution_date,
    solution_date,
    closed,
    (epoch(solution_date) - epoch(creation_date)) / 3600.0 AS cycle_hours,
    (epoch(estimated_solution_date) - epoch(creation_date)) / 3600.0 AS sla_hours,
    CASE
        WHEN estimated_solution_date IS NULL THEN 'no estimate'
        WHEN closed AND solution_date <= estimated_solution_date THEN 'on time'
        WHEN closed THEN 'overdue'
        WHEN _extracted_at > estimated_solution_date THEN 'overdue'
        WHEN epoch(estimated_solution_date) - epoch(_extracted_at)
             <= 0.2 * (epoch(estimated_solution_date) - epoch(creation_date)) THEN 'at risk'
        ELSE 'on time'
    END AS sla_status
FROM bizagi.cases;
