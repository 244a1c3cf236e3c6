from __future__ import annotations

from django.urls import path

from healing import apis

urlpatterns = [
    path("failures", apis.FailureListApi.as_view(), name="failures"),
    path("failures/<str:failure_id>", apis.FailureDetailApi.as_view(), name="failure"),
    path("rca", apis.RCAListApi.as_view(), name="rca-results"),
    path("rca/learner", apis.RCALearnerApi.as_view(), name="rca-learner"),
    path("rca/<str:rca_id>", apis.RCADetailApi.as_view(), name="rca-result"),
    path("rca/<str:rca_id>/confirm", apis.RCAConfirmApi.as_view(), name="rca-confirm"),
    path("healing-strategies", apis.HealingStrategyListApi.as_view(), name="healing-strategies"),
    path("healing-actions", apis.HealingActionListApi.as_view(), name="healing-actions"),
    path("healing-actions/<str:action_id>", apis.HealingActionDetailApi.as_view(), name="healing-action"),
    path(
        "healing-actions/<str:action_id>/approve", apis.HealingActionApproveApi.as_view(), name="healing-action-approve"
    ),
    path("healing-actions/<str:action_id>/reject", apis.HealingActionRejectApi.as_view(), name="healing-action-reject"),
]
