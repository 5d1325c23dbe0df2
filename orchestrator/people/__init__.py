"""People: accounts, logins and roles, who may see and do what (``access``), and the
admin API's bearer tokens.

Uses the ground floor only.
"""
