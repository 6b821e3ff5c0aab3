//! Plaid's enumerations as open sets (see `open_enum!`): error types and codes, webhook types
//! and codes, account types, products, and the small status enums of the transactions API.

open_enum! {
    /// `error_type` of a Plaid error: the broad category.
    pub enum ErrorType {
        InvalidRequest => "INVALID_REQUEST",
        InvalidResult => "INVALID_RESULT",
        InvalidInput => "INVALID_INPUT",
        InstitutionError => "INSTITUTION_ERROR",
        RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
        ApiError => "API_ERROR",
        ItemError => "ITEM_ERROR",
        AssetReportError => "ASSET_REPORT_ERROR",
        RecaptchaError => "RECAPTCHA_ERROR",
        OauthError => "OAUTH_ERROR",
        PaymentError => "PAYMENT_ERROR",
        BankTransferError => "BANK_TRANSFER_ERROR",
        IncomeVerificationError => "INCOME_VERIFICATION_ERROR",
        MicrodepositsError => "MICRODEPOSITS_ERROR",
        SandboxError => "SANDBOX_ERROR",
        PartnerError => "PARTNER_ERROR",
        SignalError => "SIGNAL_ERROR",
        TransactionsError => "TRANSACTIONS_ERROR",
        TransactionError => "TRANSACTION_ERROR",
        TransferError => "TRANSFER_ERROR",
        CheckReportError => "CHECK_REPORT_ERROR",
        ConsumerReportError => "CONSUMER_REPORT_ERROR",
        UserError => "USER_ERROR",
    }
}

open_enum! {
    /// `error_code` of a Plaid error: the specific cause. Match on this, not on messages.
    pub enum ErrorCode {
        // INVALID_REQUEST
        InvalidBody => "INVALID_BODY",
        InvalidHeaders => "INVALID_HEADERS",
        InvalidField => "INVALID_FIELD",
        MissingFields => "MISSING_FIELDS",
        UnknownFields => "UNKNOWN_FIELDS",
        NotFound => "NOT_FOUND",
        SandboxOnly => "SANDBOX_ONLY",
        IncompatibleApiVersion => "INCOMPATIBLE_API_VERSION",
        // INVALID_INPUT
        InvalidApiKeys => "INVALID_API_KEYS",
        InvalidAccessToken => "INVALID_ACCESS_TOKEN",
        InvalidPublicToken => "INVALID_PUBLIC_TOKEN",
        InvalidLinkToken => "INVALID_LINK_TOKEN",
        InvalidInstitution => "INVALID_INSTITUTION",
        InvalidAccountId => "INVALID_ACCOUNT_ID",
        InvalidWebhookVerificationKeyId => "INVALID_WEBHOOK_VERIFICATION_KEY_ID",
        UnauthorizedEnvironment => "UNAUTHORIZED_ENVIRONMENT",
        // ITEM_ERROR
        ItemLoginRequired => "ITEM_LOGIN_REQUIRED",
        ItemNotFound => "ITEM_NOT_FOUND",
        ItemLocked => "ITEM_LOCKED",
        ItemNotSupported => "ITEM_NOT_SUPPORTED",
        InvalidCredentials => "INVALID_CREDENTIALS",
        InvalidMfa => "INVALID_MFA",
        InsufficientCredentials => "INSUFFICIENT_CREDENTIALS",
        NoAccounts => "NO_ACCOUNTS",
        ProductNotReady => "PRODUCT_NOT_READY",
        ProductsNotSupported => "PRODUCTS_NOT_SUPPORTED",
        UserPermissionRevoked => "USER_PERMISSION_REVOKED",
        AccessNotGranted => "ACCESS_NOT_GRANTED",
        // TRANSACTIONS_ERROR
        TransactionsSyncMutationDuringPagination => "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
        // RATE_LIMIT_EXCEEDED
        RateLimit => "RATE_LIMIT",
        TransactionsSyncLimit => "TRANSACTIONS_SYNC_LIMIT",
        TransactionsLimit => "TRANSACTIONS_LIMIT",
        AccountsLimit => "ACCOUNTS_LIMIT",
        AccountsBalanceGetLimit => "ACCOUNTS_BALANCE_GET_LIMIT",
        BalanceLimit => "BALANCE_LIMIT",
        TransactionsRefreshLimit => "TRANSACTIONS_REFRESH_LIMIT",
        ItemGetLimit => "ITEM_GET_LIMIT",
        // API_ERROR
        InternalServerError => "INTERNAL_SERVER_ERROR",
        PlannedMaintenance => "PLANNED_MAINTENANCE",
        // INSTITUTION_ERROR
        InstitutionDown => "INSTITUTION_DOWN",
        InstitutionNotResponding => "INSTITUTION_NOT_RESPONDING",
        InstitutionNotAvailable => "INSTITUTION_NOT_AVAILABLE",
        // SANDBOX_ERROR
        SandboxProductNotEnabled => "SANDBOX_PRODUCT_NOT_ENABLED",
        SandboxWebhookInvalid => "SANDBOX_WEBHOOK_INVALID",
    }
}

open_enum! {
    /// `webhook_type`: the product or object a webhook is about.
    pub enum WebhookType {
        Auth => "AUTH",
        Holdings => "HOLDINGS",
        InvestmentsTransactions => "INVESTMENTS_TRANSACTIONS",
        Item => "ITEM",
        Liabilities => "LIABILITIES",
        Transactions => "TRANSACTIONS",
        Assets => "ASSETS",
        /// Link sessions: Hosted Link, Multi-Item Link.
        Link => "LINK",
    }
}

open_enum! {
    /// `webhook_code`: what happened. Meaningful together with the `webhook_type`.
    pub enum WebhookCode {
        SyncUpdatesAvailable => "SYNC_UPDATES_AVAILABLE",
        DefaultUpdate => "DEFAULT_UPDATE",
        InitialUpdate => "INITIAL_UPDATE",
        HistoricalUpdate => "HISTORICAL_UPDATE",
        TransactionsRemoved => "TRANSACTIONS_REMOVED",
        RecurringTransactionsUpdate => "RECURRING_TRANSACTIONS_UPDATE",
        Error => "ERROR",
        PendingExpiration => "PENDING_EXPIRATION",
        PendingDisconnect => "PENDING_DISCONNECT",
        UserPermissionRevoked => "USER_PERMISSION_REVOKED",
        UserAccountRevoked => "USER_ACCOUNT_REVOKED",
        LoginRepaired => "LOGIN_REPAIRED",
        NewAccountsAvailable => "NEW_ACCOUNTS_AVAILABLE",
        WebhookUpdateAcknowledged => "WEBHOOK_UPDATE_ACKNOWLEDGED",
        SmsMicrodepositsVerification => "SMS_MICRODEPOSITS_VERIFICATION",
        AuthorizationGranted => "AUTHORIZATION_GRANTED",
        ProductReady => "PRODUCT_READY",
        SessionFinished => "SESSION_FINISHED",
        ItemAddResult => "ITEM_ADD_RESULT",
        Events => "EVENTS",
    }
}

open_enum! {
    /// The Plaid environment a webhook or token belongs to.
    pub enum Environment {
        Sandbox => "sandbox",
        Production => "production",
    }
}

open_enum! {
    /// `type` of an account.
    pub enum AccountType {
        Investment => "investment",
        Credit => "credit",
        Depository => "depository",
        Loan => "loan",
        Brokerage => "brokerage",
        /// The documented value `other` (not to be confused with `Other(_)`, an unknown value).
        OtherType => "other",
    }
}

open_enum! {
    /// `subtype` of an account (nullable on the wire: use `Option<AccountSubtype>`). The common
    /// subtypes are variants; the long tail arrives as `Other`.
    pub enum AccountSubtype {
        Checking => "checking",
        Savings => "savings",
        MoneyMarket => "money market",
        Cd => "cd",
        CashManagement => "cash management",
        Prepaid => "prepaid",
        Paypal => "paypal",
        Hsa => "hsa",
        Ebt => "ebt",
        CreditCard => "credit card",
        Student => "student",
        Mortgage => "mortgage",
        Auto => "auto",
        LineOfCredit => "line of credit",
        Loan => "loan",
        Brokerage => "brokerage",
        Ira => "ira",
        K401 => "401k",
        Roth => "roth",
        /// The documented value `other`.
        OtherSubtype => "other",
    }
}

open_enum! {
    /// A Plaid product name, as used in `products`, `billed_products`, `initial_products`.
    pub enum Product {
        Assets => "assets",
        Auth => "auth",
        Balance => "balance",
        Identity => "identity",
        Investments => "investments",
        Liabilities => "liabilities",
        PaymentInitiation => "payment_initiation",
        Transactions => "transactions",
        Income => "income",
        IncomeVerification => "income_verification",
        Transfer => "transfer",
        Employment => "employment",
        RecurringTransactions => "recurring_transactions",
        TransactionsRefresh => "transactions_refresh",
        Signal => "signal",
        Statements => "statements",
    }
}

open_enum! {
    /// `transactions_update_status` of a `/transactions/sync` response.
    pub enum TransactionsUpdateStatus {
        Unknown => "TRANSACTIONS_UPDATE_STATUS_UNKNOWN",
        NotReady => "NOT_READY",
        InitialUpdateComplete => "INITIAL_UPDATE_COMPLETE",
        HistoricalUpdateComplete => "HISTORICAL_UPDATE_COMPLETE",
    }
}

open_enum! {
    /// `payment_channel` of a transaction.
    pub enum PaymentChannel {
        Online => "online",
        InStore => "in store",
        /// The documented value `other`.
        OtherChannel => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_deserialise_into_other_and_round_trip() {
        let code: ErrorCode = serde_json::from_str("\"SOMETHING_NEW\"").unwrap();
        assert_eq!(code, ErrorCode::Other("SOMETHING_NEW".into()));
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"SOMETHING_NEW\"");
        let known: WebhookCode = serde_json::from_str("\"LOGIN_REPAIRED\"").unwrap();
        assert_eq!(known, WebhookCode::LoginRepaired);
        assert!(known.is_known());
    }
}
