"""What no strategy spec can express, as the request words it: the table `claims` reads into
`UNEXPRESSIBLE` (one row per line, `kind pattern`; the format and macros of `agents.quant.claims`).
Data, kept apart from the reader so each file stays within its size."""

TABLE = r"""
time-of-day <B>(?:intra-?day|time[\s-]of[\s-]day|opening\s{1,2}range|first\s{1,2}(?:\d{1,3}|few
    |thirty|fifteen)\s{1,2}minutes?|(?:at|before|after|near|into)\s{1,2}(?:the\s{1,2})?
    (?:market\s{1,2})?(?:open|close|opening\s{1,2}bell|closing\s{1,2}bell)|market[\s-]on[\s-]close
    |end\s{1,2}of\s{1,2}(?:the\s{1,2})?(?:trading\s{1,2})?day|\d{1,2}:\d\d(?:\s{0,2}(?:am|pm))?
    |\d{1,2}\s{0,2}(?:am|pm))<E>|장\s{0,2}(?:시작|초반|마감|종료)|장중|시초가|동시\s{0,2}호가|오전
    |오후|\d{1,2}\s{0,2}시(?:\s{0,2}\d{1,2}\s{0,2}분|에|부터|까지|\s{0,2}정각)
opening-gaps <B>(?:gap(?:s|ped|ping)?[\s-]{0,2}(?:up|down|higher|lower|fill(?:s|ed)?)
    |opening\s{1,2}gaps?)<E>|갭\s{0,2}(?:상승|하락|업|다운|메우기)|(?:상승|하락)\s{0,2}갭
news-earnings <B>(?:news|headlines?|sentiment|earnings|tweets?|twitter|social\s{1,2}media|reddit
    |fomc|fed\s{1,2}(?:meetings?|announcements?|decisions?)|economic\s{1,2}(?:calendar|data
    |releases?)|announcements?|press\s{1,2}releases?|analyst\s{1,2}(?:ratings?|upgrades?
    |downgrades?))<E>|뉴스|감성|실적|어닝|공시|호재|악재
fundamentals <B>(?:(?-i:P/?E|PER|PBR|EPS|ROE|P/B)|p/e|pe\s{1,2}ratio|price[\s-]to[\s-](?:earnings
    |book|sales)|dividends?|market\s{1,2}cap(?:itali[sz]ation)?|revenues?|book\s{1,2}value
    |fundamentals?|balance\s{1,2}sheets?|cash\s{1,2}flows?|valuations?)<E>|배당|시가\s{0,2}총액|매출
    |재무\s{0,2}제표|영업\s{0,2}이익|순이익|펀더멘털
options <B>(?:options?\s{1,2}(?:contracts?|chains?|strateg(?:y|ies)|trading|premiums?)|(?:call
    |put)\s{1,2}options?|calls?\s{1,2}and\s{1,2}puts?|(?:buy|sell)(?:ing)?\s{1,2}(?:calls|puts)
    |straddles?|strangles?|iron\s{1,2}condors?|covered\s{1,2}calls?|protective\s{1,2}puts?
    |implied\s{1,2}volatility|greeks|strike\s{1,2}prices?)<E>|옵션|내재\s{0,2}변동성|행사가
several-symbols <B>(?:pairs?[\s-]trad(?:e|es|ing)|stat(?:istical)?\s{1,2}arb(?:itrage)?
    |spread\s{1,2}between|cointegrat(?:ed|ion)|correlat(?:ed|ion|ions)|basket\s{1,2}of|(?:multiple
    |several|many|all|two|three|a\s{1,2}few)\s{1,2}(?:stocks|symbols|assets|tickers|instruments
    |coins|currencies|markets)|across\s{1,2}(?:all\s{1,2}|many\s{1,2})?(?:stocks|symbols|assets
    |markets)|universe\s{1,2}of|top\s{1,2}\d{1,4}\s{1,2}(?:stocks|coins)|sector\s{1,2}rotation)<E>
    |페어\s{0,2}트레이딩|여러\s{0,2}(?:종목|자산|코인)|종목들|상관\s{0,2}관계
rebalancing <B>(?:rebalanc(?:e|es|ed|ing)|asset\s{1,2}allocation|portfolio\s{1,2}(?:optimi[sz]ation
    |weights?|construction|allocation)|risk\s{1,2}parity|equal[\s-]weight(?:ed)?
    |mean[\s-]variance)<E>|리밸런싱|자산\s{0,2}배분|포트폴리오\s{0,2}(?:구성|최적화|비중)
prediction <B>(?:machine[\s-]learning|(?-i:ML|AI)|neural\s{1,2}(?:net|network)s?|deep\s{1,2}learning
    |lstm|random\s{1,2}forests?|xgboost|lightgbm|gradient\s{1,2}boost(?:ing|ed)?
    |regression\s{1,2}model|predict(?:s|ed|ing|ion|ions|ive)?|forecast(?:s|ed|ing)?|classifiers?
    |train(?:ed|ing)?\s{1,2}(?:a\s{1,2})?model|reinforcement\s{1,2}learning
    |artificial\s{1,2}intelligence)<E>|머신\s{0,2}러닝|딥\s{0,2}러닝|인공\s{0,2}지능|예측|신경망
    |강화\s{0,2}학습
indicators <B>(?:vwap|stochastic(?:\s{1,2}(?:rsi|oscillator))?|stoch\s{0,2}rsi|ichimoku|adx|cci
    |williams\s{0,2}%\s{0,2}r|obv|on[\s-]balance\s{1,2}volume|parabolic\s{1,2}sar|keltner
    (?:\s{1,2}channels?)?|pivot\s{1,2}points?|fibonacci|supertrend|mfi|money\s{1,2}flow\s{1,2}index
    |candlestick\s{1,2}patterns?|support\s{1,2}and\s{1,2}resistance|trend\s{1,2}lines?|(?:weighted
    |hull)\s{1,2}moving\s{1,2}averages?|wma|hma)<E>|스토캐스틱|일목\s{0,2}균형표|피보나치|파라볼릭
    |지지선|저항선|추세선|캔들\s{0,2}패턴|가중\s{0,2}이동\s{0,2}평균
timeframes <B>(?:multi(?:ple)?[\s-]time[\s-]?frames?|higher\s{1,2}time[\s-]?frames?|weekly\s{1,2}
    (?:charts?|bars?|candles?|closes?)|monthly\s{1,2}(?:charts?|candles?)|\d{1,3}[\s-]{0,2}(?:min
    (?:ute)?|hour|hr)[\s-]{0,2}(?:charts?|bars?|candles?)|tick\s{1,2}data|minute\s{1,2}bars?)<E>
    |주봉|월봉|분봉|틱\s{0,2}데이터
orders-costs <B>(?:limit\s{1,2}orders?|stop[\s-]limit|market\s{1,2}orders?|slippage|commissions?
    |fees?|order\s{1,2}book|bid[\s-]ask|market\s{1,2}depth|short\s{1,2}interest|open\s{1,2}interest
    |funding\s{1,2}rates?)<E>|지정가|시장가|슬리피지|수수료|호가
position-sizing <B>(?:pyramid(?:s|ing)?|scal(?:e|es|ing)\s{1,2}(?:in|out|into)|add
    (?:ing)?\s{1,2}to\s{1,2}(?:the\s{1,2}|a\s{1,2})?(?:winning\s{1,2}|losing\s{1,2})?positions?
    |partial\s{1,2}(?:exits?|profits?)|risk(?:ing)?\s{1,2}\d{1,3}(?:\.\d{1,2})?\s{0,2}%
    (?:\s{1,2}of\s{1,2}(?:the\s{1,2})?(?:equity|capital|account))?\s{1,2}per\s{1,2}trade|kelly
    |leverag(?:e|ed)|margin|trailing\s{1,2}(?:\d{1,3}(?:\.\d{1,2})?\s{0,2}(?:x|×|times)?\s{0,2})?atr
    |atr[\s-]{0,2}trailing)<E>|분할\s{0,2}(?:매수|매도)|물타기|불타기|피라미딩|레버리지
calendar <B>(?:mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|weekends?|day\s{1,2}of\s{1,2}
    (?:the\s{1,2})?week|month[\s-]end|end\s{1,2}of\s{1,2}(?:the\s{1,2})?month
    |turn\s{1,2}of\s{1,2}the\s{1,2}month|seasonal(?:ity)?|holidays?)<E>|월요일|화요일|수요일|목요일
    |금요일|월말|월초|계절성
"""

BUNDLED_BARS = {
    "BTCUSD": r"monthly|월봉|(?<!\d)1\s{0,2}개월\s{0,2}봉",
    "EURUSD": r"hourly|(?<!\d)1[\s-]{0,2}(?:hour|hr)|(?<!\d)1\s{0,2}시간\s{0,2}봉",
    "GOOG": r"daily|일봉",
}
"""A bar size that is the bundled data of the symbol (BTCUSD is monthly, EURUSD hourly, GOOG
daily): said of that symbol, a "timeframes" phrase asks for nothing the spec cannot do."""
