from django.contrib import admin
from django.urls import path

from orders import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orders/<int:pk>/", views.order_page, name="order"),
    path("orders/<int:pk>/herald-token", views.herald_token, name="herald-token"),
]
