"""Pages of the guidelines app.

Evaluators: read and acknowledge the guideline, the guideline panel beside the item card
(an htmx fragment), calibration rounds with feedback after each answer.
Leads: guideline editor (preview, publish, diff, translations, worked examples), gold
items, calibration rounds and their reports, honeypot suspensions, too-fast judgments.

Views stay thin: parse, fetch through one access helper, call a service, render. A
refused input re-renders the page with the service's message and HTTP 400.

One page group per module: `reading` (the guideline and its panel), `calibration` (an
evaluator's rounds), `editor` (the lead's guideline editor), `gold`, `rounds` (the lead's
calibration rounds), `quality` (honeypot suspensions, too-fast judgments); `common` holds
what they share.
"""
