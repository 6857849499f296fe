"""Every metric the agent exposes, declared once, grouped by what it measures.

Names, types, labels and buckets are the monitoring guide's (section 2). prometheus-client
appends `_total` to counters when it exposes them, so `luminamind_llm_cost_usd` is scraped
as `luminamind_llm_cost_usd_total`: queries must use the scraped name.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Request metrics: recorded by the HTTP middleware with the route template as endpoint.
REQUEST_COUNT = Counter(
    "luminamind_requests_total", "Total number of requests", ["method", "endpoint", "status"]
)
REQUEST_LATENCY = Histogram(
    "luminamind_request_duration_seconds",
    "Request latency in seconds",
    ["method", "endpoint"],
    buckets=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
)

# Tool metrics.
TOOL_INVOCATIONS = Counter(
    "luminamind_tool_invocations_total", "Total tool invocations", ["tool_name", "status"]
)
TOOL_DURATION = Histogram(
    "luminamind_tool_duration_seconds",
    "Tool execution duration",
    ["tool_name"],
    buckets=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
)
TOOL_ERRORS = Counter(
    "luminamind_tool_errors_total", "Tool execution errors", ["tool_name", "error_type"]
)

# LLM metrics.
LLM_REQUESTS = Counter(
    "luminamind_llm_requests_total", "Total LLM API requests", ["provider", "model", "status"]
)
LLM_TOKENS = Counter(
    "luminamind_llm_tokens_total", "Total tokens consumed", ["provider", "model", "type"]
)
LLM_LATENCY = Histogram(
    "luminamind_llm_latency_seconds",
    "LLM API call latency",
    ["provider", "model"],
    buckets=[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0],
)
LLM_COST = Counter(
    "luminamind_llm_cost_usd", "Estimated LLM API cost in USD", ["provider", "model"]
)

# Cache metrics.
CACHE_OPERATIONS = Counter(
    "luminamind_cache_operations_total", "Cache operations", ["operation", "result"]
)
CACHE_SIZE = Gauge("luminamind_cache_size_bytes", "Current cache size in bytes")

# Accuracy metrics.
RESPONSE_QUALITY = Counter(
    "luminamind_response_quality_total", "Response quality feedback", ["category", "rating"]
)
ACCURACY_SCORE = Gauge(
    "luminamind_accuracy_score", "Current accuracy score (0-1)", ["category"]
)

# System metrics.
ACTIVE_SESSIONS = Gauge("luminamind_active_sessions", "Number of active chat sessions")
CHECKPOINT_OPERATIONS = Counter(
    "luminamind_checkpoint_operations_total", "Checkpoint operations", ["operation", "backend"]
)
CHECKPOINT_ERRORS = Counter(
    "luminamind_checkpoint_errors_total",
    "Checkpoint operations that failed (the chat still answers)",
    ["operation", "backend"],
)
CHECKPOINT_SIZE = Histogram(
    "luminamind_checkpoint_size_bytes",
    "Checkpoint size in bytes",
    buckets=[1024, 10240, 102400, 1024000, 10240000],
)

# Lab additions. The guide's HighMemoryUsage divides container metrics that only exist on
# Kubernetes; the agent publishes its own limit so the rule can divide the process's
# resident memory by it instead.
MEMORY_LIMIT = Gauge(
    "luminamind_memory_limit_bytes", "Memory the agent may use (cgroup limit or setting)"
)
FAULT_SETTING = Gauge(
    "luminamind_fault_setting", "Current value of each fault knob (0 or 1 for switches)", ["fault"]
)
# Requests past AGENT_TRACES_PER_SECOND are not traced (demo_agent/sampling.py); this counts
# them, so a gap in Jaeger under a flood is visible rather than silent.
TRACES_UNSAMPLED = Counter(
    "luminamind_traces_unsampled_total", "Requests not traced because the trace rate was reached"
)
# The agent's own OTLP log export (log_export.py) drops lines only when its queue is full or
# the endpoint refuses a batch; this counts them, so a gap in Loki is visible too.
LOG_RECORDS_DROPPED = Counter(
    "luminamind_log_records_dropped_total",
    "Log lines not exported over OTLP: queue full, or refused by the endpoint",
    ["reason"],
)
