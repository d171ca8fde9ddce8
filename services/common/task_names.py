"""Every Celery task name, defined once: the contract between the services that send tasks by name (ingest,
orders, the admin CLI, beat) and the transform worker that registers them. A sender imports the name from
here and never imports worker code; tests/contract/test_task_names.py checks that the worker registers
every name sent anywhere.

The names are stable strings, not module paths: a message already in the queue during a rolling upgrade must
still find its task after a refactor moves the function.
"""
from __future__ import annotations

# Sent by ingest (and `cafeflow uploads retry`): load one upload; take one upload's sales back out.
PROCESS_UPLOAD = "transform.process_upload"
RETRACT_UPLOAD = "transform.retract_upload"
# Sent by orders after a delivery or a refund commits (services/common/live_orders.py).
LOAD_LIVE_ORDER = "transform.load_live_order"
# Beat's periodic tasks (services/transform/celery_app.py).
SWEEP_UPLOADS = "transform.sweep_uploads"
SWEEP_LIVE_ORDERS = "transform.sweep_live_orders"
PURGE_RAW_FILES = "transform.purge_raw_files"
ERASE_ORDER_CUSTOMER_DETAILS = "transform.erase_order_customer_details"

ALL = (PROCESS_UPLOAD, RETRACT_UPLOAD, LOAD_LIVE_ORDER, SWEEP_UPLOADS, SWEEP_LIVE_ORDERS, PURGE_RAW_FILES,
       ERASE_ORDER_CUSTOMER_DETAILS)
