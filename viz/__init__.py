"""Pure views: a Trace (or plain arrays / lists of dicts) in, a plotly figure or plain data out.

Imports numpy, plotly and models.trace only: never keras, tensorflow or streamlit."""
from viz.curves import batch_curves, compare_curves, epoch_curves, epochs_csv, metrics_csv
from viz.flow import COLOUR_MODES, carry_summary, flow_figure, flow_html, flow_table
from viz.gradient_view import gradient_figure
from viz.hidden import hidden_heatmap, timestep_heatmap
from viz.layers import direction_summary, layer_summary
from viz.layout_view import layout_figure
from viz.stream import stream_figure

__all__ = ["COLOUR_MODES", "batch_curves", "carry_summary", "compare_curves", "direction_summary", "epoch_curves", "epochs_csv",
           "flow_figure", "flow_html", "flow_table", "gradient_figure", "hidden_heatmap", "layer_summary", "layout_figure",
           "metrics_csv", "stream_figure", "timestep_heatmap"]
