"""ibsim: a paper IB gateway that speaks the TWS socket protocol (server version 176)
over the project's seeded synthetic market, with scriptable faults.

    from ibsim import IBSim, SimThread
    port = await IBSim(config).start(port=0)        # in a running event loop
    with SimThread({"speed": 600}) as sim: ...      # on a background thread: sim.port
"""
from ibsim.config import SimConfigError, load_sim_config
from ibsim.faults import FaultError
from ibsim.server import IBSim, SimThread

__all__ = ["IBSim", "SimThread", "load_sim_config", "SimConfigError", "FaultError"]
