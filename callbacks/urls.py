from __future__ import annotations

from django.urls import path

from callbacks import apis

urlpatterns = [
    path("subscriptions", apis.SubscriptionListCreateApi.as_view(), name="subscriptions"),
    path("subscriptions/<str:subscription_id>", apis.SubscriptionDetailApi.as_view(), name="subscription-detail"),
    path(
        "subscriptions/<str:subscription_id>/deliveries",
        apis.SubscriptionDeliveriesApi.as_view(),
        name="subscription-deliveries",
    ),
    path(
        "subscriptions/<str:subscription_id>/replay", apis.SubscriptionReplayApi.as_view(), name="subscription-replay"
    ),
    path(
        "subscriptions/<str:subscription_id>/enable", apis.SubscriptionEnableApi.as_view(), name="subscription-enable"
    ),
]
