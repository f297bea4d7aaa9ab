"""Config -> Backtrader objects. Shared by the backtest, sweep and live runners so
every one of them builds the same strategy, sizer, guards and costs from a config."""
from __future__ import annotations

import datetime as dt

import backtrader as bt

from bifrost.guards import GuardLimits
from brokers.commissions import OptionCommission, StockCommission
from feeds.arrays import OptionData, StockData
from feeds.market import Market
from sizers.hedge import HedgeSizer


def guard_limits(cfg: dict) -> GuardLimits:
    g = cfg["gates"]
    risk = g["guard"]["risk"]
    hedge = g["intent"]["hedge"]
    earn = g["strategy"]["earnings"]
    return GuardLimits(
        max_daily_loss_usd=risk["max_daily_loss_usd"],
        trading_hours_only=g["strategy"]["trading_hours_only"],
        earnings_dates=tuple(dt.date.fromisoformat(d) for d in earn["dates"]),
        blackout_days_before=earn["blackout_days_before"],
        blackout_days_after=earn["blackout_days_after"],
        cooldown_seconds=hedge["cooldown_seconds"],
        max_daily_hedge_count=risk["max_daily_hedge_count"],
        max_position_shares=risk["max_position_shares"],
        max_net_delta_shares=risk["max_net_delta_shares"],
        max_spread_pct=risk["max_spread_pct"],
        min_price_move_pct=hedge["min_price_move_pct"],
    )


def strategy_params(cfg: dict) -> dict:
    g = cfg["gates"]
    st = g["strategy"]["structure"]
    state = g["state"]
    return dict(
        min_dte=st["min_dte"], max_dte=st["max_dte"], atm_band_pct=st["atm_band_pct"],
        manage_structure=st["manage"], contracts=st["contracts"],
        epsilon_band=state["delta"]["epsilon_band"],
        threshold_hedge_shares=state["delta"]["threshold_hedge_shares"],
        max_delta_limit=state["delta"]["max_delta_limit"],
        vol_window_min=state["market"]["vol_window_min"],
        stale_ts_threshold_ms=state["market"]["stale_ts_threshold_ms"],
        gap_pct=state["market"]["gap_pct"],
        wide_spread_pct=state["liquidity"]["wide_spread_pct"],
        extreme_spread_pct=state["liquidity"]["extreme_spread_pct"],
        data_lag_threshold_ms=state["system"]["data_lag_threshold_ms"],
        error_retry_seconds=state["execution"]["error_retry_seconds"],
        risk_free_rate=cfg["greeks"]["risk_free_rate"],
        volatility=cfg["greeks"]["volatility"],
        guard_limits=guard_limits(cfg),
    )


def sizer_params(cfg: dict) -> dict:
    hedge = cfg["gates"]["intent"]["hedge"]
    return dict(min_hedge_shares=hedge["min_hedge_shares"],
                max_hedge_shares_per_order=hedge["max_hedge_shares_per_order"],
                max_position_shares=cfg["gates"]["guard"]["risk"]["max_position_shares"])


def add_market(cerebro: bt.Cerebro, market: Market, cfg: dict) -> list:
    """The stock feed first, then the option slots; each with its commission scheme."""
    mult = cfg["gates"]["strategy"]["structure"]["multiplier"]
    b = cfg["broker"]
    stock = StockData(columns={"datetime": market.dt, "open": market.open, "high": market.high,
                               "low": market.low, "close": market.close,
                               "volume": market.volume, "bid": market.bid, "ask": market.ask})
    cerebro.adddata(stock, name=market.symbol)
    cerebro.broker.addcommissioninfo(
        StockCommission(data=stock, per_share=b["stock"]["commission_per_share"],
                        min_commission=b["stock"]["min_commission"],
                        slippage_bps=b["stock"]["slippage_bps"]), name=market.symbol)
    datas = [stock]
    for i, cols in enumerate(market.slots):
        side = "C" if cols["right"][0] > 0 else "P"
        name = f"{market.symbol}-slot{i // 2}{side}"
        d = OptionData(columns=cols, multiplier=mult)
        cerebro.adddata(d, name=name)
        cerebro.broker.addcommissioninfo(
            OptionCommission(data=d, mult=mult, per_contract=b["option"]["commission_per_contract"],
                             slippage_pct=b["option"]["slippage_pct"]), name=name)
        datas.append(d)
    return datas


def add_hedging(cerebro: bt.Cerebro, cfg: dict, strategy=None) -> None:
    """The strategy with its sizer; the guard analyzer comes with the strategy."""
    from strategies.gamma_scalping import GammaScalping
    cerebro.addstrategy(strategy or GammaScalping, **strategy_params(cfg))
    cerebro.addsizer(HedgeSizer, **sizer_params(cfg))
