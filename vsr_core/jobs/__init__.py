"""File-to-file jobs and what keeps them safe: exclusive locks, path checks, content keys, the resume cache."""
