using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Cli.Reporting;

/// <summary>
/// Expert-utilisation plots for learners with routed experts: after each task, for the first and last expert block
/// (head 0 and the mean over heads), the share of top-K selections each expert received on each finished task's
/// training data. One PNG per block, rows = tasks, so a glance shows whether new tasks moved to other experts.
/// </summary>
public sealed class ExpertPlots(RunFolder folder)
{
    private readonly Dictionary<int, List<double[]>> history = [];
    private readonly Dictionary<int, double[]> previousCounts = [];

    public void Record(IExpertUsage usage, int task)
    {
        using var frequencies = usage.ExpertFrequencies.detach().cpu().to(float64);  // [blocks, heads, experts], cumulative
        var blocks = new[] { 0, usage.ExpertBlocks.Count - 1 }.Distinct();
        foreach (var p in blocks)
        {
            var cumulative = frequencies[p].mean([0]).data<double>().ToArray();
            var previous = previousCounts.GetValueOrDefault(p) ?? new double[cumulative.Length];
            var increment = cumulative.Select((c, j) => c - previous[j]).ToArray();
            var total = increment.Sum();
            var share = increment.Select(x => total > 0 ? x / total : 0).ToArray();
            previousCounts[p] = cumulative;
            if (!history.TryGetValue(p, out var rows)) history[p] = rows = [];
            while (rows.Count < task) rows.Add(new double[share.Length]);  // resumed runs: earlier tasks unknown
            rows.Add(share);
            var matrix = new double[rows.Count, share.Length];
            for (var r = 0; r < rows.Count; r++) for (var j = 0; j < share.Length; j++) matrix[r, j] = rows[r][j];
            var labels = Enumerable.Range(1, rows.Count).Select(t => $"task {t}").ToArray();
            var block = usage.ExpertBlocks[p];
            Plots.ExpertUtilisation(matrix, labels, folder.ResultPath($"experts_block{block}.png"),
                $"Share of expert selections per task, block {block} (mean over heads)");
        }
    }
}
