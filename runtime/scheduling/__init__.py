"""The cron scheduler: where schedules come from (``entries``) and the loop that fires them."""
