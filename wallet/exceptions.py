from betting_site.errors import ApplicationError


class InsufficientBalance(ApplicationError):
    code = "INSUFFICIENT_BALANCE"
    http_status = 400
    message = "The available balance does not cover this bet"
