"""Who may see and operate a tenant's console.

Members of a tenant (tenants.Membership) see its console; operators among
them may act. Staff and superusers see every tenant and the platform view.
A user of one tenant asking for another's console gets 403, the same answer
whether or not they are signed in elsewhere: the host already names the
tenant, so nothing is revealed by saying no.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.models import Membership, Role, Tenant
from tenants.staff import is_platform_staff

User = AbstractBaseUser | AnonymousUser
View = Callable[..., HttpResponse]


def role_in(user: Any, tenant: Tenant) -> str | None:
    """The user's role in the tenant; staff act as operators everywhere; None: no access."""
    if not user.is_authenticated or not user.is_active:
        return None
    if is_platform_staff(user):
        return Role.OPERATOR.value
    role = Membership.objects.filter(user_id=user.pk, tenant_id=tenant.pk).values_list("role", flat=True).first()
    return str(role) if role is not None else None


def tenants_of(user: Any) -> list[Tenant]:
    if not user.is_authenticated:
        return []
    tenants = Tenant.objects.filter(ready=True).exclude(schema_name="public")
    if not is_platform_staff(user):
        tenants = tenants.filter(memberships__user_id=user.pk)
    return list(tenants.order_by("slug"))


def tenant_console(view: View | None = None, *, operate: bool = False) -> Any:
    """Decorator for tenant console views: a tenant host, a signed-in member (an operator to act)."""

    def decorate(inner: View) -> View:
        @wraps(inner)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            tenant = getattr(request, "tenant", None)
            if tenant is None:
                return render(request, "console/no_tenant.html", {"tenants": tenants_of(request.user)}, status=404)
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            role = role_in(request.user, tenant)
            if role is None:
                return render(request, "console/forbidden.html", {"tenant": tenant}, status=403)
            if operate and role != Role.OPERATOR:
                return render(request, "console/forbidden.html", {"tenant": tenant, "need": "operator"}, status=403)
            request.console_role = role  # type: ignore[attr-defined]
            return inner(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def staff_console(inner: View) -> View:
    """Decorator for the platform view: signed-in staff, on any host."""

    @wraps(inner)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_platform_staff(request.user):
            return render(request, "console/forbidden.html", {"need": "staff"}, status=403)
        return inner(request, *args, **kwargs)

    return wrapper


def live_page(request: HttpRequest, template: str, fragment: str, context: dict[str, Any]) -> HttpResponse:
    """A console page whose `#live` fragment refreshes itself: the fragment alone when asked (?fragment=1).

    A viewer sees no forms: the POST views refuse them anyway (403), but a
    button that cannot work misleads.
    """
    context = {**context, "can_operate": getattr(request, "console_role", "") == Role.OPERATOR}
    if request.GET.get("fragment"):
        return render(request, fragment, context)
    return render(request, template, {**context, "fragment": fragment})
