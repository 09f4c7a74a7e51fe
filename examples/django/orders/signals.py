"""Publish every saved order to its topic, once the transaction has committed.

on_commit matters: publishing inside the transaction would announce a state that a rollback can
still undo, and a page that reacts by fetching the order could read the old row.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from herald import HeraldError

from .herald_client import herald
from .models import Order

log = logging.getLogger(__name__)


@receiver(post_save, sender=Order)
def publish_order(sender, instance: Order, **kwargs):
    event = instance.as_event()
    # The key names this version of the order: if the request is retried, or the publish is
    # retried after a lost answer, subscribers still see it once.
    key = f"order-{instance.pk}-{instance.updated_at.timestamp()}"

    def send():
        try:
            herald().publish(instance.topic, event, event="order.updated", retain=True, idempotency_key=key)
        except HeraldError:
            # The order is saved; a page that missed this update reloads on its next change.
            # Never fail the request for a notification.
            log.exception("herald: could not publish %s", instance.topic)

    transaction.on_commit(send)
