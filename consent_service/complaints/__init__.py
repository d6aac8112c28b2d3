"""Complaints and takedown: anyone files one (`/complaints/new`), an operator works through them
against published time limits, the provider concerned is told and answers, the complainant is
told the outcome in their language."""
