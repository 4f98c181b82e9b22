"""What people read: the PDF, the worklist, the audit trail, dashboards, the sentences shown to clinicians, terminal tables."""
