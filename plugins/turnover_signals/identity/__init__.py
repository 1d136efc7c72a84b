"""The canonical identity layer: one employee_key across HRIS, LMS, email and SSO."""
