using System.Globalization;
using ContinualMoE.Evaluation;
using Spectre.Console;

namespace ContinualMoE.Cli.Reporting;

/// <summary>
/// Console tables of a run's results. They only build renderables; the caller decides where to print them,
/// which keeps this testable and lets commands stay quiet in scripted mode.
/// </summary>
public static class SummaryTable
{
    /// <summary>Final metrics, one row each; fields that are undefined for this run are shown as "–".</summary>
    public static Table Metrics(ContinualMetrics metrics, string title = "Final metrics")
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var table = new Table { Title = new TableTitle(Markup.Escape(title)) };
        table.AddColumn("metric");
        table.AddColumn(new TableColumn("value").RightAligned());

        table.AddRow("tasks trained", metrics.TasksTrained.ToString(CultureInfo.InvariantCulture));
        table.AddRow("final average accuracy (%)", Format(metrics.FinalAverageAccuracy));
        table.AddRow("final accuracy over samples (%)", Format(metrics.FinalAccuracyOverSamples));
        table.AddRow("cumulative average accuracy (%)", Format(metrics.CumulativeAverageAccuracy));
        table.AddRow("cumulative accuracy over samples (%)", Format(metrics.CumulativeAccuracyOverSamples));
        table.AddRow("forgetting (pp)", Format(metrics.Forgetting));
        table.AddRow("backward transfer (pp)", Format(metrics.BackwardTransfer));
        if (metrics.TaskIdentity is { } identity)
        {
            table.AddRow("task-identity accuracy (%)", Format(identity.FinalAverage));
            table.AddRow("task-identity accuracy over samples (%)", Format(identity.FinalOverSamples));
        }
        return table;
    }

    /// <summary>
    /// The accuracy matrix as a grid (rows: evaluated task, columns: after task), with a final row giving the average
    /// accuracy over seen tasks after each complete step.
    /// </summary>
    public static Table AccuracyGrid(AccuracyMatrix matrix, string title = "Accuracy (%) of each task after each training step")
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var n = matrix.TaskCount;
        var table = new Table { Title = new TableTitle(Markup.Escape(title)) };
        table.AddColumn("task");
        for (var t = 0; t < n; t++)
            table.AddColumn(new TableColumn($"after {t.ToString(CultureInfo.InvariantCulture)}").RightAligned());

        for (var i = 0; i < n; i++)
        {
            var cells = new string[n + 1];
            cells[0] = i.ToString(CultureInfo.InvariantCulture);
            for (var t = 0; t < n; t++)
                cells[t + 1] = matrix.IsRecorded(i, t) ? Format(matrix[i, t]) : "";
            table.AddRow(cells);
        }

        var trained = matrix.TasksTrained;
        if (trained > 0)
        {
            var curve = ContinualMetrics.Compute(matrix).AverageAccuracyCurve;
            var average = new string[n + 1];
            average[0] = "[bold]avg[/]";
            for (var t = 0; t < n; t++) average[t + 1] = t < trained ? $"[bold]{Format(curve[t])}[/]" : "";
            table.AddEmptyRow();
            table.AddRow(average);
        }
        return table;
    }

    private static string Format(double? value) =>
        value is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "–";
}
