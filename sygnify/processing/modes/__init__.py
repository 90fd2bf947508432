"""The four ways LargeDataHandler runs a job: streaming, chunked, parallel, incremental."""
