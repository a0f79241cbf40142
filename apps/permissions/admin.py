from django.contrib import admin

from .models import Membership, Quota, Tenant, TenantPool


class TenantPoolInline(admin.TabularInline):
    model = TenantPool
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class QuotaInline(admin.TabularInline):
    model = Quota
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "lease_days"]
    search_fields = ["name", "slug"]
    inlines = [TenantPoolInline, MembershipInline, QuotaInline]
