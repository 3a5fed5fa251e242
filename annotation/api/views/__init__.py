"""The REST API under /api/v1/ (see DESIGN.md, "Public interfaces").

Views are thin: parse input with a small serializer, resolve the project through
`ProjectAccess`, call one service, shape the answer. Who may call what:

| endpoint                              | token scopes        | session            |
|---------------------------------------|---------------------|--------------------|
| GET  projects/                        | any (own project*)  | projects worked/led|
| POST projects/                        | projects            | staff or a lead    |
| GET  projects/{slug}/items/           | read, import        | lead               |
| POST projects/{slug}/items/           | import              | lead               |
| POST projects/{slug}/judgments/       | import              | lead               |
| POST projects/{slug}/queue/claim/     | —                   | evaluator          |
| POST assignments/{id}/judgment/       | —                   | its evaluator      |
| GET  projects/{slug}/agreement/       | read, export        | lead               |
| GET  projects/{slug}/parity/          | read, export        | lead               |
| GET  projects/{slug}/export/…/        | export              | lead               |
| POST projects/{slug}/reports/         | import              | lead               |
| GET  projects/{slug}/datacard/        | read, export        | lead               |

* a `projects` token, which belongs to no project, lists the projects it created.

One resource per module: `projects`, `items` (list, imports, user reports), `evaluators`
(claim, submit), `reports` (agreement, parity), `exports` (preference pulls,
retractions, raw judgments, the data card); `base` holds what they share.
"""
