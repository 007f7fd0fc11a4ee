//! gitfaas observer — not built yet (issue 6): it will measure arrival rate,
//! service rate and response times from the jobs and results topics and decide
//! the worker count. The crate exists so the workspace has its final layout.
