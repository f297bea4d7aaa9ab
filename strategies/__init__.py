from strategies.gamma_scalping import GammaScalping

__all__ = ["GammaScalping"]
