"""Tables of the request reader (`agents.quant.claims`): the whole-phrase facts read first
(`PHASE1`: stops, exits after N bars, sizing, direction, symbol, dates, streaks) and the cues
that give a rule its role (`CUES`: entry, exit, short). One row per line, `name pattern`; the
format and macros of `agents.quant.claims`. Data, kept apart from the reader so each file stays
within its size."""

# Whole-phrase facts: `field` (a number in group v, p = an ATR period), `field=value` (fixed),
# `dates` (groups s = start, e = end, y = both), `symbol` (group v, a ticker).
PHASE1 = r"""
atr_stop_multiple <V><X><ATR>[\s-]{0,3}(?:(?:initial|protective|hard)\s{1,2})?(?:<STOP>|손절(?:매
    |선)?|스탑|스톱)<E>
"   <B><STOP><SEP><V><X><ATR>
"   <B>atr<ATRP>\s{0,2}(?:의)?\s{0,2}<V>\s{0,2}(?:배|x|×)\s{0,2}(?:손절|스탑|스톱|stop)
"   <KSTOP>\s{0,2}(?:은|는|을|를|선은|라인은)?\s{0,2}(?:the\s{1,2})?atr<ATRP>\s{0,2}(?:의)?
    \s{0,2}<V>\s{0,2}(?:배|x|×)
trailing_stop_pct <B><TRAIL><SEP><P>
"   (?:최고\s{0,2}(?:종가|가|점)|고점)\s{0,2}(?:대비|에서|으로부터)\s{0,2}<P>\s{0,2}(?:빠지|하락
    |떨어지|내려가)
"   <B>trail(?:ing)?\s{1,2}(?:the\s{1,2}|a\s{1,2}|its\s{1,2})?(?:short|long|position|trade
    |it)\s{1,2}with\s{1,2}(?:a\s{1,2})?<P>(?:\s{0,2}(?:stop|sl)<E>)?
"   <P>\s{0,2}(?:의\s{0,2})?(?:trail+ing|trail)<E>(?:[\s-]{0,2}(?:stop(?:[\s-]{0,2}loss)?|sl)<E>)?
"   <KTRAIL><SEP><P>
"   <P>\s{0,2}(?:의\s{0,2})?<KTRAIL>
stop_loss_pct <B><STOP><E><SEP><P>
"   <P>\s{0,2}(?:<STOP>|loss)<E>
"   <KSTOP><SEP><P>
"   <P>\s{0,2}(?:에서\s{0,2}|에\s{0,2}|의\s{0,2})?(?:손절(?:매)?|손실\s{0,2}(?:시|제한)
    |스탑\s{0,2}로스)
"   <P>\s{0,2}(?:under[\s-]?water|in\s{1,2}the\s{1,2}red)<E>
"   <B>(?:if|when|once)\s{1,2}(?:it'?s|it\s{1,2}is|the\s{1,2}trade\s{1,2}is)\s{1,2}down\s{1,2}<P>
take_profit_pct <B><TP><E><SEP>(?:\+\s{0,2})?<P>
"   <B>(?:if|when|once)\s{1,2}(?:it'?s|it\s{1,2}is|the\s{1,2}trade\s{1,2}is)\s{1,2}up\s{1,2}<P>
"   (?:(?<=cover\s)|(?<=exit\s)|(?<=sell\s)|(?<=close\s)|(?<=out\s)|(?<=it\s))at\s{1,2}\+\s{0,2}<P>
"   (?:\+\s{0,2})?<P>\s{0,2}(?:<TP>|profit|gain)<E>
"   <KTP><SEP><P>
"   <P>\s{0,2}(?:에서\s{0,2}|에\s{0,2})?(?:<KTP>|수익\s{0,2}시|이익\s{0,2}시)
"   <P>\s{0,2}(?:수익|이익|상승|오르)\s{0,2}(?:이면|면|나면|시|에|하면)\s{0,2}<KTP>
max_bars <B>(?:exit|close|sell|cover|get\s{1,2}out|liquidate|hold|keep)(?:s|ing|ed)?(?:\s{1,2}
    (?:the\s{1,2}|a\s{1,2})?(?:positions?|trades?|it|them))?\s{0,3}(?:after|in|within|for
    |at\s{1,2}most|up\s{1,2}to|no\s{1,2}more\s{1,2}than|max)?\s{0,3}<V>[\s-]{0,2}<BARS>
"   <B><HOLD><SEP><V>(?:[\s-]{0,2}<BARS>)?
"   <V>[\s-]{0,2}(?:day|bar|session|candle)s?\s{1,2}<HOLD>
"   <B>or\s{1,2}after\s{1,2}<V>[\s-]{0,2}<BARS>
"   <V>\s{0,2}(?:거래일|일|봉|바)\s{0,2}(?:후|뒤|이후|경과\s{0,2}(?:후|시))\s{0,2}(?:에\s{0,2})?
    (?:는\s{0,2})?(?:무조건\s{0,2})?(?:청산|매도|정리|종료|exit|판다|팔(?:고|아|면)|파는)
"   <V>\s{0,2}(?:거래일|일|봉|바)\s{0,2}(?:이\s{0,2}|가\s{0,2})?(?:지나|경과|넘어가|넘)
    (?:도|면|서|고|하면|해도|하도록)?[가-힣\s]{0,16}?(?:청산|매도|정리|종료|환매|판다|팔(?:고|아|면)|파는)
"   <V><KD>(?:간|동안)?\s{0,2}(?:만\s{0,2})?보유
"   보유\s{0,2}기간<SEP>(?:최대\s{0,2})?<V><KD>
size_pct <P>\s{0,2}(?:of\s{1,2}(?:the\s{1,2}|my\s{1,2}|our\s{1,2}|total\s{1,2}
    |available\s{1,2})?)?<EQ>
"   <B>(?:position\s{1,2}size|size|allocate|allocation|invest|bet)(?:s|d|ing)?<SEP><P>(?!\s{0,2}
    (?:stop|loss|take|profit|trail))
"   <B><V>\s{1,2}(?:of\s{1,2})?(?:the\s{1,2}|my\s{1,2}|our\s{1,2})?<EQ>
"   <KCAP><P>
"   (?:투자\s{0,2})?비중<SEP><P>
"   <KCAP>(?P<v>절반|반(?![가-힣]))
direction=both <B>(?:long\s{0,2}(?:and|&|/|or|\+|-)\s{0,2}short|short\s{0,2}(?:and|&|/|or|\+
    |-)\s{0,2}long)<E><ND>|<B>(?:both\s{1,2}(?:directions|sides|ways)|trade\s{1,2}both\s{1,2}ways)
    <E>|롱\s{0,2}(?:/|과|와|-|·|&)?\s{0,2}숏|양방향
direction=short <B>(?:sell(?:s|ing)?\s{1,2}short|short[\s-]{0,2}sell(?:s|ing|er)?|go(?:es
    |ing)?\s{1,2}short|short[\s-]only|only\s{1,2}short|shorting|shorts)<E>|<B>(?<!in\s)short<E><ND>
    |공매도|매도\s{0,2}포지션|숏
direction=long <B>(?:go(?:es|ing)?\s{1,2}long|long[\s-]only|only\s{1,2}long|longs)<E>|<B>(?<!as\s)
    (?<!how\s)(?<!so\s)(?<!too\s)long<E>(?!\s{1,2}(?:as|ago|enough|time|wicks?)\b)<ND>|롱
    |매수\s{0,2}포지션
symbol (?<![a-z$])(?:(?:on|for|trade|trading|of|backtest|test|in|with)\s{1,2}|\$)<TICKER>
symbol=GOOG <B>(?:googl?|google|alphabet)<E>|구글|알파벳
symbol=EURUSD <B>(?:eur\s{0,2}[/-]?\s{0,2}usd|euro\s{0,2}[/-]?\s{0,2}(?:dollars?|usd)|euro|eur)<E>
    |유로\s{0,2}/?\s{0,2}달러|유로
symbol=BTCUSD <B>(?:btc\s{0,2}[/-]?\s{0,2}usdt?|btc|xbt|bitcoin)<E>|비트\s{0,2}코인
symbol=AAPL <B>(?:aapl|apple)<E>|애플
symbol=ETHUSD <B>(?:eth\s{0,2}[/-]?\s{0,2}usd|eth|ethereum)<E>|이더리움
dates (?:(?:from|between|since)\s{1,2})?(?P<s><DATE>)\s{0,3}(?:to|until|till|through|thru|and|-|–|~
    |부터|에서)\s{0,3}(?P<e><DATE>)(?:\s{0,2}까지)?
"   <B>(?:from|since|starting(?:\s{1,2}(?:in|from|on))?|beginning(?:\s{1,2}(?:in|of))?|after)\s{1,2}
    (?P<s><DATE>)
"   (?P<s><DATE>)\s{0,2}(?:부터|이후)
"   <B>(?:until|till|through|thru|to|up\s{1,2}to|before|ending(?:\s{1,2}in)?)\s{1,2}(?P<e><DATE>)
"   (?P<e><DATE>)\s{0,2}까지
"   <B>(?:in|during|only)\s{1,2}(?P<y><DATE>)
"   (?P<y><DATE>)\s{0,2}(?:한\s{0,2}해|동안|에만)
up_streak <STREAK><UP>(?:[\s-]{0,2}(?:closes?|days?|bars?|candles?|sessions?))?<E>
"   <V>\s{0,2}<UP><ROW>
"   <V><KD>연속\s{0,2}(?:상승|양봉|오름)
"   연속\s{0,2}<V><KD>(?:상승|양봉|오름)
down_streak <STREAK><DN>(?:[\s-]{0,2}(?:closes?|days?|bars?|candles?|sessions?))?<E>
"   <V>\s{0,2}<DN><ROW>
"   <V><KD>연속\s{0,2}(?:하락|음봉|내림)
"   연속\s{0,2}<V><KD>(?:하락|음봉|내림)
"""
# Cues: the role of the rule they govern (`claims.roles`). A reversal is the cue of the side it
# opens: "숏 정리하고 롱" (close the short and go long), "close the long and go short", "flip long".
CUES = r"""
entry (?:숏|공매도)\s{0,2}(?:포지션)?<KTHEN>(?:롱|매수)
    |<B>(?:close|cover|exit)(?:s|ing)?(?:\s{1,2}<ANY>shorts?(?:\s{1,2}positions?)?)?<ETHEN>
    (?:(?:go(?:es|ing)?|get|open)\s{1,2}(?:a\s{1,2})?long|buy)<E>|<B><FLIP>long<E>
short (?:롱|매수)\s{0,2}(?:포지션)?<KTHEN>(?:숏|공매도)
    |<B>(?:close|exit|sell)(?:s|ing)?(?:\s{1,2}<ANY>longs?(?:\s{1,2}positions?)?)?<ETHEN>
    (?:(?:go(?:es|ing)?|get|open)\s{1,2}(?:a\s{1,2})?short|sell\s{1,2}short)<E>|<B><FLIP>short<E>
short <B>(?:sell(?:s|ing)?\s{1,2}short|short[\s-]{0,2}sell(?:s|ing)?|go(?:es|ing)?\s{1,2}short|short
    (?:ing)?\s{1,2}(?:[a-z0-9$/]{1,10}\s{1,2})?(?:when|if|on|once|entry|entries)|(?:enter|open)(?:s
    |ing)?\s{1,2}(?:a\s{1,2})?short)<E>|공매도|숏\s{0,2}(?:포지션\s{0,2})?진입|숏(?![가-힣])
exit <B>(?:buy(?:ing)?\s{1,2}(?:to\s{1,2})?(?:cover|back)|sell(?:s|ing)?|exit(?:s|ing)?|close(?:s
    |d)?\s{1,2}(?:the\s{1,2}|a\s{1,2}|all\s{1,2}|out\s{1,2}(?:the\s{1,2})?)?(?:positions?|trades?
    |long|short|it)|close\s{1,2}out|cover(?:s|ing)?|liquidat(?:e|es|ing)|flatten|ends?\s{1,2}it
    |gets?\s{1,2}(?:me\s{1,2}|us\s{1,2})?out|go(?:es|ing)?\s{1,2}(?:to\s{1,2})?flat
    |flat\s{1,2}(?:when|if|on|once)
    |out\s{1,2}(?:on|when|if|once|at))<E>|(?<![과공])매도(?!\s{0,2}포지션)|청산|팔(?:고|아|면)|판다
    |파는|환매(?:수)?
entry <B>(?:buy(?:s|ing)?|purchase|enter(?:s|ing)?|entry|entries|go(?:es|ing)?\s{1,2}long
    |long\s{1,2}(?:when|if|on|once)|open(?:s|ing)?\s{1,2}(?:a\s{1,2})?(?:long|position)
    |gets?\s{1,2}(?:me\s{1,2}|us\s{1,2})?in|means\s{1,2}long)<E>|매수
    |진입|사고|산다
"""
