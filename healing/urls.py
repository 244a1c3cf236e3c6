from __future__ import annotations

from django.urls import path

from healing import apis

urlpatterns = [
    path("healing-actions", apis.HealingActionListApi.as_view(), name="healing-actions"),
    path("healing-actions/<str:action_id>", apis.HealingActionDetailApi.as_view(), name="healing-action"),
    path(
        "healing-actions/<str:action_id>/approve", apis.HealingActionApproveApi.as_view(), name="healing-action-approve"
    ),
    path("healing-actions/<str:action_id>/reject", apis.HealingActionRejectApi.as_view(), name="healing-action-reject"),
]
