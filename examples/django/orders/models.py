from django.conf import settings
from django.db import models


class Order(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, default="created")
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def topic(self):
        return f"orders/{self.pk}"

    def as_event(self):
        return {"id": self.pk, "status": self.status, "updated_at": self.updated_at.isoformat()}
