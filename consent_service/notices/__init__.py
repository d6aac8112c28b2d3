"""What people are told about their enrollments: on their dashboard and by mail."""
