"""The general trading and quant concepts of `agents.quant.glossary`, one row each.

A row is (English names, Korean aliases, English definition, Korean definition); the names are
"|"-separated and the first English one is the term's name. Matching ignores case, spaces,
hyphens, dots and slashes, so spelling variants are listed only where traders write them.
The backtest metrics (Sharpe, max drawdown, ...) and the backtesting concepts (overfitting,
look-ahead bias, ...) live in `glossary.py`, next to the platform they describe.
"""

from __future__ import annotations

Row = tuple[str, str, str, str]

GENERAL: tuple[Row, ...] = (
    # orders and exits
    (
        "market order|mkt order",
        "시장가 주문|시장가|시장가 매수|시장가 매도",
        "An order to buy or sell immediately at the best price currently available. It is "
        "almost certain to fill, but the fill price is not guaranteed (see slippage).",
        "지금 가능한 가장 좋은 가격으로 즉시 사거나 파는 주문입니다. 체결은 거의 확실하지만 "
        "체결 가격은 보장되지 않습니다(슬리피지).",
    ),
    (
        "limit order|limit price order",
        "지정가 주문|지정가|지정가 매수|지정가 매도",
        "An order to buy at or below, or sell at or above, a price you set. The price is "
        "guaranteed if it fills, but it may never fill if the market does not reach that price.",
        "정한 가격 이하로 사거나 이상으로 팔겠다는 주문입니다. 체결되면 가격은 보장되지만, "
        "시장이 그 가격에 닿지 않으면 체결되지 않을 수 있습니다.",
    ),
    (
        "stop order|stop-market order|stop market",
        "스톱 주문|스탑 주문|역지정가 주문|역지정가|스톱 마켓 주문",
        "An order that waits until the price reaches a trigger (the stop price) and then becomes "
        "a market order. Buy stops sit above the current price, sell stops below it.",
        "가격이 정한 발동 가격(스톱 가격)에 닿을 때까지 기다렸다가 시장가 주문으로 바뀌는 "
        "주문입니다. 매수 스톱은 현재가 위에, 매도 스톱은 현재가 아래에 둡니다.",
    ),
    (
        "stop-limit order|stop limit order|stop-limit|stoplimit",
        "스톱 리밋 주문|스톱 리밋|스탑 리밋|스톱 지정가 주문",
        "A stop order that becomes a limit order instead of a market order once the stop price "
        "is reached. It caps the fill price but may not fill if the price jumps past the limit.",
        "스톱 가격에 닿으면 시장가가 아니라 지정가 주문으로 바뀌는 스톱 주문입니다. 체결 "
        "가격에 한도를 둘 수 있지만, 가격이 지정가를 건너뛰면 체결되지 않을 수 있습니다.",
    ),
    (
        "stop-loss|stop loss|stoploss|stop-loss order|S/L|SL",
        "손절|손절매|손절 주문|손절가|손절 라인|손절선|스톱로스|스탑로스",
        "An exit that closes a losing position once the price has moved a set amount against "
        "it, usually placed as a stop order. It caps the loss of a single trade.",
        "가격이 정해 둔 만큼 불리하게 움직이면 손실 중인 포지션을 정리하는 청산 방법으로, "
        "보통 스톱 주문으로 걸어 둡니다. 한 거래에서 잃을 수 있는 금액을 제한합니다.",
    ),
    (
        "take-profit|take profit|takeprofit|take-profit order|TP|T/P|profit target",
        "익절|익절매|익절 주문|익절가|이익 실현|이익실현 주문|테이크 프로핏",
        "An exit that closes a profitable position when the price reaches a preset target, "
        "locking in the gain. It is usually a limit order at the target price.",
        "가격이 미리 정한 목표가에 닿으면 수익 중인 포지션을 정리해 이익을 확정하는 "
        "청산 방법입니다. 보통 목표 가격에 지정가 주문으로 걸어 둡니다.",
    ),
    (
        "trailing stop|trailing stop-loss|trailing stop order",
        "트레일링 스톱|트레일링 스탑|추적 손절|추적 손절매|트레일링 스톱 주문",
        "A stop-loss that follows the price as it moves in your favour, staying a fixed distance "
        "or percentage behind it, and never moves back. It protects gains while a winner runs.",
        "가격이 유리하게 움직이면 일정한 거리나 비율만큼 뒤에서 따라가고 반대로는 움직이지 "
        "않는 손절입니다. 이익을 지키면서 수익 나는 거래를 계속 가져갈 수 있게 합니다.",
    ),
    (
        "fill|order fill|order execution|execution",
        "체결|주문 체결|체결가",
        "The execution of an order: the trade actually happening at a price. An order can fill "
        "completely, partially (only part of the quantity) or not at all.",
        "주문이 실제로 어떤 가격에 거래되는 것입니다. 주문은 전부 체결되거나, 일부만 "
        "체결되거나(부분 체결), 전혀 체결되지 않을 수 있습니다.",
    ),
    # positions and financing
    (
        "long position|long|going long|go long|long trade",
        "롱|롱 포지션|매수 포지션",
        "Owning an asset (having bought it), so that you profit when its price rises and lose "
        "when it falls.",
        "자산을 사서 보유한 상태로, 가격이 오르면 이익을 보고 내리면 손실을 봅니다.",
    ),
    (
        "short position|short|going short|go short|short trade",
        "숏|숏 포지션|매도 포지션",
        "A position that profits when the price falls and loses when it rises, usually opened "
        "by short selling. Its possible loss has no upper limit, because a price can keep rising.",
        "가격이 내리면 이익, 오르면 손실이 나는 포지션으로 보통 공매도로 만듭니다. 가격은 "
        "계속 오를 수 있으므로 손실에 이론상 한계가 없습니다.",
    ),
    (
        "short selling|short sale|shorting|selling short|short sell",
        "공매도|숏 셀링|숏셀링|차입 공매도",
        "Borrowing an asset and selling it, planning to buy it back later at a lower price and "
        "return it to the lender. It profits when the price falls and pays borrowing costs.",
        "자산을 빌려서 먼저 팔고, 나중에 더 싼 가격에 되사서 갚는 거래입니다. 가격이 "
        "내리면 이익을 보며, 포지션을 유지하는 동안 차입 비용을 냅니다.",
    ),
    (
        "leverage|leveraged trading|gearing",
        "레버리지|지렛대 효과|레버리지 효과|레버리지 투자",
        "Controlling a position larger than your own capital by borrowing or with derivatives: "
        "10:1 leverage lets $1,000 control $10,000. Gains and losses grow in the same proportion.",
        "빌린 돈이나 파생상품으로 자기 자본보다 큰 포지션을 운용하는 것입니다. 10배 "
        "레버리지면 100만 원으로 1,000만 원어치를 거래하며, 이익과 손실도 같은 비율로 커집니다.",
    ),
    (
        "margin|margin trading|buying on margin|trading on margin|initial margin",
        "증거금|마진|위탁 증거금|개시 증거금|신용거래|신용 매수",
        "The collateral a broker requires you to deposit to open and hold a leveraged position. "
        "Trading on margin means borrowing the rest of the position's value from the broker.",
        "레버리지 포지션을 열고 유지하려면 브로커에 맡겨야 하는 담보금입니다. 증거금 "
        "거래(신용거래)는 포지션 금액의 나머지를 브로커에게 빌려 거래하는 것입니다.",
    ),
    (
        "margin call",
        "마진콜|추가 증거금 요구|추가 증거금 요청",
        "A broker's demand for more funds when losses push the account's equity below the "
        "maintenance margin. If it is not met, the broker can close the positions.",
        "손실로 계좌 평가액이 유지 증거금 아래로 떨어졌을 때 브로커가 자금을 더 넣으라고 "
        "요구하는 것입니다. 채우지 않으면 브로커가 포지션을 강제로 청산할 수 있습니다.",
    ),
    (
        "forced liquidation|liquidation|stop out|stop-out",
        "강제 청산|반대매매|로스컷",
        "The broker closing your positions without your instruction because the margin no "
        "longer covers them, usually after an unanswered margin call.",
        "증거금이 포지션을 감당하지 못할 때 브로커가 본인 지시 없이 포지션을 정리하는 "
        "것으로, 보통 마진콜에 응하지 않으면 일어납니다.",
    ),
    # strategies and styles
    (
        "mean reversion|mean-reversion|reversion to the mean|mean reverting",
        "평균 회귀|평균회귀|평균 복귀|평균 회귀 매매",
        "The tendency of a price that has moved far from its average to move back toward it. "
        "Mean-reversion strategies buy after unusual drops and sell after unusual rises.",
        "가격이 평균에서 크게 벗어나면 다시 평균 쪽으로 돌아오는 경향입니다. 평균 회귀 "
        "전략은 이례적으로 많이 내리면 사고, 많이 오르면 팝니다.",
    ),
    (
        "momentum|momentum trading|momentum investing|price momentum",
        "모멘텀|모멘텀 투자|모멘텀 매매",
        "The tendency of assets that have risen (or fallen) recently to keep moving the same "
        "way for a while. Momentum strategies buy recent winners and sell or avoid recent losers.",
        "최근 오른(또는 내린) 자산이 한동안 같은 방향으로 계속 움직이는 경향입니다. 모멘텀 "
        "전략은 최근 많이 오른 자산을 사고, 많이 내린 자산은 팔거나 피합니다.",
    ),
    (
        "trend following|trend-following|trend trading|trend follower",
        "추세 추종|추세추종|추세 매매|트렌드 팔로잉",
        "Trading in the direction of an established trend, e.g. holding while the price is "
        "above a long moving average, and exiting when it reverses. It accepts many small losses "
        "to catch a few large moves.",
        "이미 형성된 추세 방향으로 거래하고 추세가 꺾이면 빠져나오는 전략입니다(예: 가격이 "
        "장기 이동평균 위에 있는 동안 보유). 작은 손실을 여러 번 감수하고 큰 흐름을 잡습니다.",
    ),
    (
        "breakout|break-out|breakout trading|price breakout",
        "돌파|돌파 매매|브레이크아웃|가격 돌파",
        "A move of the price beyond a support or resistance level or out of a recent range. "
        "Breakout strategies enter in the direction of the move, expecting it to continue.",
        "가격이 지지선이나 저항선, 최근의 박스권을 뚫고 나가는 움직임입니다. 돌파 전략은 "
        "그 움직임이 이어질 것으로 보고 돌파한 방향으로 진입합니다.",
    ),
    (
        "pairs trading|pair trading|pairs trade|pair trade",
        "페어 트레이딩|페어 매매|페어 거래",
        "A market-neutral strategy on two historically related assets: when the gap between "
        "their prices widens unusually, buy the cheap one and short the dear one, betting that "
        "the gap narrows again.",
        "역사적으로 함께 움직여 온 두 자산으로 하는 시장 중립 전략입니다. 두 가격의 차이가 "
        "이례적으로 벌어지면 싼 쪽을 사고 비싼 쪽을 공매도해, 차이가 좁혀질 때 이익을 봅니다.",
    ),
    (
        "arbitrage|arb|arbitrage trading",
        "차익거래|아비트라지|재정거래",
        "Profiting from a price difference for the same or an equivalent asset in different "
        "markets by buying where it is cheap and selling where it is dear at the same time. Such "
        "near-riskless gaps close quickly.",
        "같거나 동등한 자산의 시장 간 가격 차이를 이용해, 싼 곳에서 사고 비싼 곳에서 동시에 "
        "팔아 이익을 얻는 거래입니다. 위험이 거의 없는 만큼 이런 차이는 금방 사라집니다.",
    ),
    (
        "hedging|hedge|hedge position",
        "헤지|헤징|헷지|위험 회피|헤지 거래",
        "Taking an offsetting position to reduce the risk of an existing one, e.g. shorting an "
        "index future against a stock portfolio. It lowers possible losses at the price of lower "
        "possible gains or an explicit cost.",
        "기존 포지션의 위험을 줄이려고 반대로 움직이는 포지션을 잡는 것입니다(예: 주식 "
        "포트폴리오에 대해 지수 선물 매도). 손실 가능성을 줄이는 대신 이익 가능성이나 비용을 "
        "치릅니다.",
    ),
    (
        "diversification|diversify|portfolio diversification",
        "분산 투자|포트폴리오 분산|자산 분산|분산화",
        "Spreading capital across assets or strategies that do not move together, so that a "
        "loss in one is partly offset by the others. It reduces risk without necessarily "
        "reducing the expected return.",
        "함께 움직이지 않는 여러 자산이나 전략에 자금을 나눠, 한쪽의 손실을 다른 쪽이 일부 "
        "메우게 하는 것입니다. 기대 수익을 꼭 줄이지 않고도 위험을 낮춥니다.",
    ),
    (
        "day trading|day trade|intraday trading",
        "데이 트레이딩|단타|단타 매매|당일 매매|일중 매매",
        "Opening and closing positions within the same trading day, so that nothing is held "
        "overnight.",
        "같은 거래일 안에 포지션을 열고 닫아, 밤을 넘겨 보유하는 포지션이 없게 하는 매매입니다.",
    ),
    (
        "swing trading|swing trade",
        "스윙 매매|스윙 트레이딩|스윙",
        "Holding positions for several days to a few weeks to capture one price swing, between "
        "day trading and long-term investing.",
        "며칠에서 몇 주 동안 포지션을 보유하며 한 번의 가격 파동을 노리는 매매로, 데이 "
        "트레이딩과 장기 투자의 중간입니다.",
    ),
    (
        "scalping|scalp trading|scalp",
        "스캘핑|초단타|초단타 매매",
        "A very short-term style that takes many small profits from tiny price moves, holding "
        "for seconds to minutes. Spread and commission decide whether it pays.",
        "몇 초에서 몇 분만 보유하며 아주 작은 가격 움직임에서 작은 이익을 여러 번 챙기는 "
        "초단기 매매입니다. 스프레드와 수수료가 수익 여부를 좌우합니다.",
    ),
    (
        "averaging down|average down",
        "물타기|평단 낮추기|평균 단가 낮추기",
        "Buying more of a position as its price falls, which lowers the average entry price. It "
        "brings break-even closer but makes the loss bigger if the price keeps falling.",
        "가격이 떨어질 때 더 사서 평균 매입 단가를 낮추는 것입니다. 본전까지의 거리는 "
        "줄지만 가격이 계속 떨어지면 손실이 더 커집니다.",
    ),
    (
        "pyramiding|adding to winners",
        "불타기|피라미딩",
        "Adding to a position that is already profitable as the price keeps moving your way, "
        "usually in smaller amounts each time.",
        "이미 수익이 나고 있는 포지션에 가격이 계속 유리하게 움직일 때, 보통 점점 작은 "
        "단위로 추가 매수하는 것입니다.",
    ),
    (
        "dollar-cost averaging|DCA|cost averaging",
        "적립식 투자|정액 적립식 투자|정액 분할 매수|코스트 애버리징",
        "Investing a fixed amount at regular intervals whatever the price, so that more units "
        "are bought when prices are low and fewer when they are high. It removes timing "
        "decisions rather than raising returns.",
        "가격과 관계없이 정해진 금액을 일정한 간격으로 투자하는 방법으로, 쌀 때는 많이, "
        "비쌀 때는 적게 사게 됩니다. 수익을 높이기보다 매수 시점 고민을 없애 줍니다.",
    ),
    # risk and sizing
    (
        "position sizing|position size|trade sizing|bet sizing",
        "포지션 사이징|포지션 크기|포지션 규모|베팅 크기",
        "Deciding how much capital to commit to each trade, e.g. sizing it so that hitting the "
        "stop-loss costs 1% of equity. It sets how much any single loss can hurt the account.",
        "거래마다 자금을 얼마나 넣을지 정하는 것입니다. 예를 들어 손절에 걸렸을 때 자산의 "
        "1%만 잃도록 크기를 정합니다. 한 번의 손실이 계좌에 주는 타격을 결정합니다.",
    ),
    (
        "Kelly criterion|Kelly formula|Kelly|Kelly bet|Kelly sizing",
        "켈리 공식|켈리 기준|켈리|켈리 베팅|켈리 법칙",
        "A formula for the fraction of capital to risk that maximises long-run growth: f = W - "
        "(1 - W) / R, with W the win probability and R the average win divided by the average "
        "loss. Traders often use a fraction of it, as full Kelly swings wildly.",
        "장기 자산 성장률을 최대로 하는 베팅 비율을 구하는 공식입니다: f = W - (1 - W) / R "
        "(W는 승률, R은 평균 이익 ÷ 평균 손실). 전체 켈리는 변동이 매우 커서 보통 그 일부만 "
        "씁니다.",
    ),
    (
        "risk-reward ratio|risk/reward|risk-reward|reward-to-risk ratio|R:R|RRR|R/R",
        "손익비|위험 보상 비율|리스크 리워드|리스크 대비 보상|위험 대비 보상 비율",
        "The planned loss of a trade (entry to stop-loss) compared with its planned gain (entry "
        "to target). At 1:3 you risk 1 to make 3, so the strategy can profit even if fewer than "
        "half of its trades win.",
        "한 거래의 예상 손실(진입가~손절가)과 예상 이익(진입가~목표가)의 비율입니다. 1:3이면 "
        "1을 걸고 3을 노리므로 승률이 50%보다 낮아도 수익이 날 수 있습니다.",
    ),
    (
        "risk management|money management|risk control",
        "리스크 관리|위험 관리|자금 관리",
        "The rules that limit how much a trader can lose: position sizing, stop-losses, "
        "diversification, and limits on leverage and drawdown.",
        "거래에서 잃을 수 있는 금액을 제한하는 규칙들로, 포지션 사이징, 손절, 분산 투자, "
        "레버리지와 낙폭 한도 등이 있습니다.",
    ),
    (
        "drawdown|draw-down|DD",
        "드로다운|낙폭|자산 낙폭|손실폭",
        "The fall of equity from its previous peak to its current value, in percent of the "
        "peak; it lasts until a new peak is reached. The largest one is the maximum drawdown.",
        "직전 고점에서 현재까지 자산이 줄어든 정도를 고점 대비 비율로 나타낸 것으로, 새 "
        "고점을 회복할 때까지 이어집니다. 그중 가장 큰 것이 최대 낙폭(MDD)입니다.",
    ),
    (
        "value at risk|VaR|value-at-risk",
        "최대 예상 손실|위험가치|밸류 앳 리스크",
        "The loss a portfolio should not exceed over a given horizon at a given confidence: a "
        "1-day 95% VaR of $10,000 means a bigger loss is expected on about 1 day in 20. It says "
        "nothing about how big those worse losses can be.",
        "주어진 기간과 신뢰수준에서 손실이 넘지 않을 것으로 보는 금액입니다. 1일 95% VaR가 "
        "1,000만 원이면 약 20일에 하루는 그보다 큰 손실이 날 수 있다는 뜻이며, 그 손실이 "
        "얼마나 클지는 알려 주지 않습니다.",
    ),
    (
        "volatility|vol|price volatility|historical volatility",
        "변동성|볼래틸리티|가격 변동성|역사적 변동성",
        "How much an asset's returns fluctuate, usually measured as the standard deviation of "
        "returns and often annualised. Higher volatility means bigger, less predictable swings.",
        "자산 수익률이 얼마나 크게 출렁이는지로, 보통 수익률의 표준편차로 재고 연율화해 "
        "씁니다. 변동성이 클수록 가격 움직임이 크고 예측하기 어렵습니다.",
    ),
    (
        "standard deviation|std dev|stdev|sigma",
        "표준편차",
        "How spread out values are around their mean: the square root of the average squared "
        "deviation from it. Applied to returns, it is the usual measure of volatility.",
        "값들이 평균 주위에 얼마나 흩어져 있는지로, 평균과의 차이를 제곱해 평균한 뒤 "
        "제곱근을 취한 값입니다. 수익률에 적용하면 보통 쓰는 변동성 척도가 됩니다.",
    ),
    (
        "beta|market beta|beta coefficient",
        "베타|베타 계수|시장 베타",
        "The sensitivity of an asset's returns to the market's returns. A beta of 1 moves with "
        "the market, above 1 amplifies its moves, below 1 dampens them, and below 0 moves "
        "against it.",
        "시장 수익률에 대한 자산 수익률의 민감도입니다. 베타가 1이면 시장만큼, 1보다 크면 "
        "더 크게, 1보다 작으면 덜 움직이고, 음수면 시장과 반대로 움직입니다.",
    ),
    (
        "alpha|Jensen's alpha",
        "알파|알파 수익|젠센의 알파",
        "The part of a strategy's return not explained by its exposure to the market (beta): "
        "its risk-adjusted return above the benchmark. Positive alpha suggests an edge.",
        "시장 노출(베타)로 설명되지 않는 전략 수익, 즉 위험을 조정한 뒤 벤치마크를 넘어선 "
        "수익입니다. 알파가 양수면 우위가 있다는 뜻으로 봅니다.",
    ),
    (
        "correlation|correlation coefficient|price correlation",
        "상관관계|상관계수|상관성",
        "A number from -1 to +1 for how closely two series move together: +1 in lockstep, -1 "
        "exactly opposite, 0 no linear relation. Low correlation makes diversification work.",
        "두 시계열이 얼마나 함께 움직이는지를 -1에서 +1 사이로 나타낸 값입니다. +1은 같이, "
        "-1은 정반대로, 0은 선형 관계 없음이며, 상관이 낮아야 분산 투자 효과가 납니다.",
    ),
    (
        "risk-free rate|risk-free return|risk-free interest rate",
        "무위험 수익률|무위험 이자율|무위험 금리",
        "The return of an investment with practically no default risk, usually short-term "
        "government bills. The Sharpe ratio subtracts it from returns (this platform uses 0).",
        "부도 위험이 사실상 없는 투자의 수익률로, 보통 단기 국채 금리를 씁니다. 샤프 지수는 "
        "수익률에서 이를 뺍니다(이 플랫폼은 0을 씁니다).",
    ),
    # market microstructure and costs
    (
        "liquidity|market liquidity",
        "유동성|시장 유동성",
        "How easily an asset can be bought or sold quickly, in size, without moving its price "
        "much. Liquid markets have tight bid-ask spreads and deep order books.",
        "가격을 크게 움직이지 않고 많은 양을 빠르게 사고팔 수 있는 정도입니다. 유동성이 "
        "높은 시장은 호가 스프레드가 좁고 호가창이 두껍습니다.",
    ),
    (
        "bid-ask spread|bid-offer spread|spread",
        "호가 스프레드|스프레드|매수 매도 호가 차이|호가 차이",
        "The difference between the highest price a buyer will pay (bid) and the lowest price a "
        "seller will accept (ask). It is a cost of every round trip and is smaller in liquid "
        "markets.",
        "매수자가 내려는 최고 가격(매수 호가)과 매도자가 받으려는 최저 가격(매도 호가)의 "
        "차이입니다. 사고팔 때마다 치르는 비용이며 유동성이 높을수록 작습니다.",
    ),
    (
        "bid and ask|bid|ask|bid price|ask price|offer price",
        "호가|매수 호가|매도 호가|매수호가와 매도호가",
        "The bid is the highest price a buyer currently offers; the ask (or offer) is the lowest "
        "price a seller will accept. An immediate buy pays the ask, an immediate sell gets the "
        "bid.",
        "매수 호가(bid)는 지금 매수자가 제시한 가장 높은 가격, 매도 호가(ask)는 매도자가 "
        "받아들일 가장 낮은 가격입니다. 바로 사면 매도 호가에, 바로 팔면 매수 호가에 "
        "체결됩니다.",
    ),
    (
        "order book|limit order book|depth of market|market depth",
        "호가창|오더북|주문장|시장 심도",
        "The live list of open buy and sell limit orders for an asset, by price level with the "
        "quantity at each. It shows how much liquidity sits near the current price.",
        "어떤 자산에 걸려 있는 매수·매도 지정가 주문을 가격대별 수량과 함께 보여 주는 "
        "실시간 목록입니다. 현재가 근처에 유동성이 얼마나 있는지 보여 줍니다.",
    ),
    (
        "slippage|price slippage",
        "슬리피지|슬리피지 비용|미끄러짐",
        "The difference between the price you expected when placing an order and the price you "
        "actually got. Price moves during execution and thin liquidity cause it, and it usually "
        "works against you.",
        "주문할 때 예상한 가격과 실제 체결 가격의 차이입니다. 체결되는 동안의 가격 변동이나 "
        "얇은 유동성 때문에 생기며 대개 불리하게 작용합니다.",
    ),
    (
        "commission|brokerage commission|brokerage fee|trading fee|broker fee",
        "수수료|거래 수수료|매매 수수료|커미션|중개 수수료",
        "The fee a broker charges for executing a trade, a fixed amount or a percentage of its "
        "value. Backtests must include it: frequent trading can turn a gross profit into a net "
        "loss.",
        "브로커가 거래를 체결해 주고 받는 요금으로, 고정 금액이나 거래 금액의 일정 "
        "비율입니다. 잦은 매매는 총이익을 순손실로 바꿀 수 있어 백테스트에도 반영해야 합니다.",
    ),
    (
        "market maker|market making|liquidity provider",
        "마켓 메이커|시장 조성자|유동성 공급자|마켓메이킹|시장 조성",
        "A firm that continuously quotes both a bid and an ask for an asset, ready to buy and "
        "sell. It earns the bid-ask spread and provides liquidity to other traders.",
        "어떤 자산에 매수 호가와 매도 호가를 계속 내며 언제든 사고팔 준비가 된 회사입니다. "
        "호가 스프레드로 수익을 내고 다른 거래자에게 유동성을 공급합니다.",
    ),
    (
        "volume|trading volume|traded volume",
        "거래량|매매량",
        "The number of shares, contracts or units traded in a period. Rising volume is often "
        "read as confirming a price move; low volume points to thin liquidity.",
        "일정 기간 동안 거래된 주식, 계약 또는 단위의 수입니다. 거래량이 늘면 가격 움직임이 "
        "확인된 것으로, 적으면 유동성이 얇은 것으로 보는 경우가 많습니다.",
    ),
    (
        "pip|percentage in point|price interest point",
        "핍",
        "The standard unit of price change in forex: 0.0001 for most currency pairs such as "
        "EURUSD, 0.01 for pairs quoted in yen.",
        "외환 가격 변동의 기본 단위로, EURUSD 같은 대부분의 통화쌍에서는 0.0001, 엔화로 "
        "표시하는 통화쌍에서는 0.01입니다.",
    ),
    # charts and indicators
    (
        "candlestick|candle|candlestick chart|candle chart|Japanese candlestick",
        "캔들|캔들스틱|캔들 차트|봉|봉차트",
        "A chart bar for one period: the body spans the open and the close, and the wicks reach "
        "the high and the low. It is usually green or hollow when the close is above the open.",
        "한 기간의 시가·고가·저가·종가를 그린 막대로, 몸통은 시가에서 종가까지, 꼬리는 "
        "고가와 저가까지 이어집니다. 한국에서는 보통 오르면 빨간 양봉, 내리면 파란 음봉입니다.",
    ),
    (
        "OHLC|OHLCV|open high low close|OHLC bar|price bar|bar",
        "시고저종|시가 고가 저가 종가",
        "Open, high, low and close: the first, highest, lowest and last traded prices of one "
        "period (a bar), often stored with its volume as OHLCV.",
        "한 기간(봉)의 시가(처음), 고가(가장 높은), 저가(가장 낮은), 종가(마지막) 거래 "
        "가격이며, 거래량을 더해 OHLCV로 저장하기도 합니다.",
    ),
    (
        "moving average|MA|SMA|simple moving average|rolling average|rolling mean",
        "이동평균|이동평균선|이평선|이평|단순 이동평균|단순 이동평균선",
        "The average of the last N prices, recomputed on every bar; it smooths out noise to "
        "show the trend. The simple moving average (SMA) weights the prices equally, the "
        "exponential one (EMA) weights recent prices more.",
        "최근 N개 가격의 평균을 매 봉 다시 계산한 값으로, 잡음을 걸러 추세를 보여 줍니다. "
        "단순 이동평균(SMA)은 모든 가격에 같은 가중치를, 지수 이동평균(EMA)은 최근 가격에 더 "
        "큰 가중치를 둡니다.",
    ),
    (
        "EMA|exponential moving average|exponentially weighted moving average|EWMA",
        "지수 이동평균|지수 이동평균선|지수 이평선",
        "A moving average that gives exponentially more weight to recent prices, so it reacts "
        "faster to new moves than a simple moving average of the same length.",
        "최근 가격일수록 지수적으로 더 큰 가중치를 주는 이동평균으로, 같은 기간의 단순 "
        "이동평균보다 새로운 움직임에 빨리 반응합니다.",
    ),
    (
        "golden cross|golden crossover",
        "골든크로스",
        "A bullish signal: a short-term moving average (classically the 50-day) crosses above a "
        "long-term one (classically the 200-day).",
        "단기 이동평균선(보통 50일선)이 장기 이동평균선(보통 200일선)을 아래에서 위로 뚫고 "
        "올라가는 것으로, 상승 신호로 봅니다.",
    ),
    (
        "death cross|dead cross|death crossover",
        "데드크로스|데스 크로스",
        "A bearish signal: a short-term moving average (classically the 50-day) crosses below a "
        "long-term one (classically the 200-day); the opposite of a golden cross.",
        "단기 이동평균선(보통 50일선)이 장기 이동평균선(보통 200일선)을 위에서 아래로 뚫고 "
        "내려가는 것으로, 하락 신호로 봅니다. 골든크로스의 반대입니다.",
    ),
    (
        "RSI|relative strength index|relative strength indicator",
        "상대강도지수|상대강도지표",
        "The Relative Strength Index: a momentum oscillator from 0 to 100 comparing the size of "
        "recent gains with recent losses, usually over 14 bars. Above 70 is commonly read as "
        "overbought, below 30 as oversold.",
        "최근 상승폭과 하락폭의 크기를 비교해 0~100으로 나타낸 모멘텀 지표(상대강도지수)로, "
        "보통 14개 봉을 씁니다. 흔히 70 이상을 과매수, 30 이하를 과매도로 봅니다.",
    ),
    (
        "MACD|moving average convergence divergence|moving average convergence/divergence",
        "맥디|이동평균 수렴 확산|이동평균 수렴확산 지수",
        "Moving Average Convergence Divergence: the 12-period EMA minus the 26-period EMA, shown "
        "with a 9-period EMA of itself as the signal line. Their crossings, and crossings of "
        "zero, are used as trend and momentum signals.",
        "12기간 EMA에서 26기간 EMA를 뺀 값(MACD선)과 그 9기간 EMA(시그널선)로 이뤄진 "
        "지표입니다. 두 선의 교차나 0선 돌파를 추세·모멘텀 신호로 씁니다.",
    ),
    (
        "Bollinger Bands|Bollinger Band|Bollinger",
        "볼린저 밴드|볼밴|볼린저",
        "Lines drawn a multiple (usually 2) of the standard deviation above and below a moving "
        "average (usually 20 periods). They widen when volatility rises; touches of the bands "
        "feed mean-reversion and breakout rules.",
        "이동평균(보통 20기간)의 위아래로 표준편차의 몇 배(보통 2배)만큼 떨어진 선을 그린 "
        "밴드입니다. 변동성이 커지면 넓어지며, 밴드 접촉을 평균 회귀나 돌파 규칙에 씁니다.",
    ),
    (
        "ATR|average true range",
        "평균 실제 범위|평균 진폭|평균 실질 변동폭|평균 트루 레인지",
        "Average True Range: the average, usually over 14 bars, of the true range, the largest "
        "of high - low, |high - previous close| and |low - previous close|. It measures "
        "volatility in price units and often sets stop distances.",
        "각 봉의 실제 범위(고가-저가, |고가-전 종가|, |저가-전 종가| 중 가장 큰 값)를 보통 "
        "14개 봉에 걸쳐 평균한 값입니다. 가격 단위로 변동성을 재며 손절 폭을 정할 때 씁니다.",
    ),
    (
        "stochastic oscillator|stochastic|stochastics|stoch",
        "스토캐스틱|스토캐스틱 오실레이터",
        "A momentum indicator from 0 to 100 showing where the close lies within the high-low "
        "range of the last N bars (usually 14), with a smoothed signal line. Above 80 is read as "
        "overbought, below 20 as oversold.",
        "최근 N개 봉(보통 14개)의 고가-저가 범위 안에서 종가의 위치를 0~100으로 나타낸 "
        "모멘텀 지표로, 평활한 시그널선과 함께 봅니다. 80 이상은 과매수, 20 이하는 과매도로 "
        "봅니다.",
    ),
    (
        "VWAP|volume-weighted average price",
        "거래량 가중 평균 가격|거래량 가중 평균가|브이왑",
        "Volume-Weighted Average Price: the average price of all trades over a period (usually "
        "a day), each weighted by its volume. It is a benchmark for execution quality and an "
        "intraday support or resistance level.",
        "일정 기간(보통 하루) 동안의 모든 거래 가격을 거래량으로 가중 평균한 가격입니다. "
        "체결 품질의 기준이자 장중 지지·저항 수준으로 씁니다.",
    ),
    (
        "overbought and oversold|overbought/oversold|overbought|oversold",
        "과매수/과매도|과매수|과매도|과매수 구간|과매도 구간",
        "Overbought: the price has risen so far so fast that a pullback is thought likely, e.g. "
        "RSI above 70; oversold is the mirror image after a fall, e.g. RSI below 30. Strong "
        "trends can stay overbought or oversold for a long time.",
        "과매수는 가격이 너무 빠르고 많이 올라 조정이 올 수 있다고 보는 상태(예: RSI 70 "
        "이상), 과매도는 너무 많이 내려 반등할 수 있다고 보는 상태(예: RSI 30 이하)입니다. "
        "강한 추세에서는 이 상태가 오래 이어질 수 있습니다.",
    ),
    (
        "support and resistance|support/resistance|support|resistance|support level|"
        "resistance level|S/R",
        "지지선/저항선|지지와 저항|지지선|저항선|지지|저항|지지대|저항대",
        "Support is a price level where falls have repeatedly stopped because buyers step in; "
        "resistance is one where rises have repeatedly stalled because sellers step in. A "
        "broken level often switches role.",
        "지지선은 매수세 때문에 하락이 여러 번 멈춘 가격대, 저항선은 매도세 때문에 상승이 "
        "여러 번 막힌 가격대입니다. 뚫리고 나면 서로 역할이 바뀌는 경우가 많습니다.",
    ),
    (
        "divergence|bullish divergence|bearish divergence",
        "다이버전스|강세 다이버전스|약세 다이버전스",
        "Price and an indicator such as RSI or MACD moving in opposite directions, e.g. a higher "
        "high in price with a lower high in RSI (bearish divergence). It is read as a sign that "
        "the trend is weakening.",
        "가격과 RSI·MACD 같은 지표가 반대로 움직이는 현상입니다. 가격 고점은 높아지는데 RSI "
        "고점은 낮아지면 약세 다이버전스로, 추세가 약해진다는 신호로 봅니다.",
    ),
    (
        "bull market|bullish|bull run",
        "강세장|상승장|불마켓|불장",
        "A market in a sustained rise, commonly 20% or more above a recent low; 'bullish' means "
        "expecting prices to rise.",
        "가격이 지속적으로 오르는 시장으로, 흔히 최근 저점에서 20% 이상 오른 경우를 말합니다. "
        "'강세'는 가격 상승을 예상한다는 뜻입니다.",
    ),
    (
        "bear market|bearish",
        "약세장|하락장|베어마켓",
        "A market in a sustained decline, commonly 20% or more below a recent high; 'bearish' "
        "means expecting prices to fall.",
        "가격이 지속적으로 내리는 시장으로, 흔히 최근 고점에서 20% 이상 떨어진 경우를 "
        "말합니다. '약세'는 가격 하락을 예상한다는 뜻입니다.",
    ),
    # portfolios
    (
        "rebalancing|rebalance|portfolio rebalancing",
        "리밸런싱|리밸런스|재조정|포트폴리오 재조정|비중 재조정",
        "Trading a portfolio back to its target weights after price moves have shifted them, "
        "e.g. selling some of what rose and buying what fell, on a schedule or past a drift "
        "threshold.",
        "가격 변동으로 틀어진 포트폴리오 비중을 목표 비중으로 되돌리는 거래입니다(예: 오른 "
        "자산 일부를 팔고 내린 자산을 삼). 정해진 주기나 비중이 기준 이상 벗어났을 때 합니다.",
    ),
)
"""Every general concept, grouped by theme; `glossary.TERMS` builds the terms from them."""
