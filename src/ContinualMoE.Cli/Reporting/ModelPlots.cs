using ContinualMoE.Deployment;
using ContinualMoE.Evaluation;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Cli.Reporting;

/// <summary>Figures of a deployed model (<c>evaluate</c>, the service's web page), drawn with <see cref="Plots"/>.</summary>
public static class ModelPlots
{
    /// <summary>Confusion matrix on a labelled evaluation: rows the true class, columns the predicted one, cells the
    /// share (%) of the row's images.</summary>
    public static void ConfusionMatrix(LabelledEvaluation evaluation, string path, string title = "Confusion matrix (% of true class)")
    {
        var n = evaluation.ClassNames.Count;
        var values = new double[n, n];
        for (var t = 0; t < n; t++)
        {
            long total = 0;
            for (var p = 0; p < n; p++) total += evaluation.Confusion[t, p];
            for (var p = 0; p < n; p++) values[t, p] = total == 0 ? double.NaN : 100.0 * evaluation.Confusion[t, p] / total;
        }
        Plots.ConfusionMatrix(values, evaluation.ClassNames.ToArray(), path, title);
    }

    /// <summary>The package's accuracy matrix over the tasks learned so far.</summary>
    public static void AccuracyMatrix(PackageManifest manifest, string path)
    {
        var full = Evaluation.AccuracyMatrix.FromCsv(manifest.AccuracyMatrix);
        var n = Math.Max(1, manifest.Tasks.Count);
        var shown = new Evaluation.AccuracyMatrix(n);
        for (var t = 0; t < manifest.Tasks.Count; t++)
            for (var i = 0; i <= t; i++)
                if (full.IsRecorded(i, t)) shown.Record(i, t, full[i, t]);
        Plots.AccuracyHeatmap(shown, path, $"{manifest.Method}: accuracy (%) of task i after task t");
    }

    /// <summary>Share of expert selections over all learned tasks' training data, one row per expert block (mean over
    /// heads); false when the method has no routed experts.</summary>
    public static bool ExpertUtilisation(IContinualLearner learner, string path)
    {
        if (learner is not IExpertUsage usage) return false;
        using var frequencies = usage.ExpertFrequencies.detach().cpu().to(float64);
        var blocks = usage.ExpertBlocks.Count;
        var experts = (int)frequencies.shape[2];
        var matrix = new double[blocks, experts];
        for (var b = 0; b < blocks; b++)
        {
            var row = frequencies[b].mean([0]).data<double>().ToArray();
            var total = row.Sum();
            for (var e = 0; e < experts; e++) matrix[b, e] = total > 0 ? row[e] / total : 0;
        }
        Plots.ExpertUtilisation(matrix, usage.ExpertBlocks.Select(b => $"block {b}").ToArray(), path, "Share of expert selections (all learned tasks)");
        return true;
    }
}
