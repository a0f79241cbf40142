from django import forms

from .choices import PowerAction


class GuestPowerForm(forms.Form):
    action = forms.ChoiceField(choices=PowerAction.choices)
    timeout = forms.IntegerField(required=False, min_value=1, max_value=3600,
                                 help_text="Shutdown only: seconds to wait before stopping it hard (default 60).")


class GuestBulkPowerForm(GuestPowerForm):
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[], label="Guests",
                                         error_messages={"required": "select at least one guest"})

    def __init__(self, *args, guests, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ids"].choices = [(g.pk, str(g)) for g in guests]
