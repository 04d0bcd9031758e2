using System.Globalization;
using ContinualMoE.Evaluation;
using ScottPlot;

namespace ContinualMoE.Cli.Reporting;

/// <summary>
/// PNG figures of a run (ScottPlot 5). Every figure is rendered in memory and written atomically, so a reader never
/// sees a half-written PNG.
/// </summary>
public static class Plots
{
    /// <summary>
    /// Heatmap of the accuracy matrix laid out as in the CSV: row <c>i</c> (top to bottom) is the evaluated task,
    /// column <c>t</c> is "after training task t". Cells show the accuracy; undefined cells are left blank.
    /// The colour scale is fixed at 0..100 % so heatmaps of different runs compare by eye.
    /// </summary>
    public static void AccuracyHeatmap(AccuracyMatrix matrix, string path, string title = "Accuracy matrix (%)")
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var n = matrix.TaskCount;
        var values = new double[n, n];
        for (var i = 0; i < n; i++)
            for (var t = 0; t < n; t++)
                values[i, t] = matrix[i, t];

        var taskLabels = Enumerable.Range(0, n).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        SaveHeatmap(values, rowLabels: taskLabels, columnLabels: taskLabels, path, title,
            xLabel: "after training task", yLabel: "evaluated task", colorBarLabel: "accuracy (%)",
            range: new ScottPlot.Range(0, 100), format: "F1");
    }

    /// <summary>
    /// Average accuracy after each task, one line per method. X is the number of tasks learned (1..T),
    /// so curve element <c>t</c> is drawn at <c>t + 1</c>.
    /// </summary>
    public static void AverageAccuracyCurve(IReadOnlyDictionary<string, double[]> curves, string path,
        string title = "Average accuracy after each task")
    {
        ArgumentNullException.ThrowIfNull(curves);
        if (curves.Count == 0) throw new ContinualMoEException("no accuracy curves to plot");

        using var plot = new Plot();
        var longest = 0;
        foreach (var (method, curve) in curves)
        {
            if (curve.Length == 0) throw new ContinualMoEException($"accuracy curve of '{method}' is empty");
            longest = Math.Max(longest, curve.Length);
            var xs = Enumerable.Range(1, curve.Length).Select(x => (double)x).ToArray();
            var line = plot.Add.Scatter(xs, curve);
            line.LegendText = method;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }

        SaveAccuracyCurves(plot, longest, title, path);
    }

    /// <summary>The axes, labels and file of an "average accuracy after each task" plot with <paramref name="longest"/> tasks.</summary>
    private static void SaveAccuracyCurves(Plot plot, int longest, string title, string path)
    {
        // Integer ticks only: "2.5 tasks learned" means nothing.
        var ticks = Enumerable.Range(1, longest).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            ticks.Select(x => (double)x).ToArray(), ticks.Select(x => x.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Axes.SetLimitsX(0.5, longest + 0.5);
        plot.Title(title);
        plot.XLabel("tasks learned");
        plot.YLabel("average accuracy (%)");
        plot.ShowLegend(Alignment.LowerLeft);
        Save(plot, path, width: 800, height: 500);
    }

    /// <summary>
    /// Average accuracy after each task over seeds: per series the mean curve and, with two or more seeds, a band of
    /// mean ± sample standard deviation.
    /// </summary>
    public static void AverageAccuracyBands(IReadOnlyList<(string Label, double[] Mean, double[]? Std)> series, string path,
        string title = "Average accuracy after each task (mean ± std over seeds)")
    {
        if (series.Count == 0) throw new ContinualMoEException("no accuracy curves to plot");
        using var plot = new Plot();
        var longest = 0;
        for (var s = 0; s < series.Count; s++)
        {
            var (label, mean, std) = series[s];
            longest = Math.Max(longest, mean.Length);
            var xs = Enumerable.Range(1, mean.Length).Select(x => (double)x).ToArray();
            var color = plot.Add.Palette.GetColor(s);
            if (std is not null)
            {
                var band = plot.Add.FillY(xs, mean.Zip(std, (m, d) => m - d).ToArray(), mean.Zip(std, (m, d) => m + d).ToArray());
                band.FillColor = color.WithAlpha(0.2);
                band.LineColor = Colors.Transparent;
            }
            var line = plot.Add.Scatter(xs, mean);
            line.Color = color;
            line.LegendText = label;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }
        SaveAccuracyCurves(plot, longest, title, path);
    }

    /// <summary>
    /// Final average accuracy against a cost (trainable parameters, test images/s): one labelled point per series at the
    /// means over seeds, with error bars of one sample standard deviation on both axes where there are two or more seeds.
    /// </summary>
    public static void AccuracyAgainst(IReadOnlyList<(string Label, double X, double? XStd, double Y, double? YStd)> points, string xLabel,
        string path, string title)
    {
        if (points.Count == 0) throw new ContinualMoEException("no points to plot");
        using var plot = new Plot();
        for (var i = 0; i < points.Count; i++)
        {
            var (label, x, xStd, y, yStd) = points[i];
            var color = plot.Add.Palette.GetColor(i);
            if (xStd is not null || yStd is not null)
            {
                var bars = plot.Add.ErrorBar([x], [y], [yStd ?? 0]);
                bars.XErrorPositive = [xStd ?? 0];
                bars.XErrorNegative = [xStd ?? 0];
                bars.Color = color;
            }
            var marker = plot.Add.Marker(x, y, MarkerShape.FilledCircle, 10, color);
            marker.LegendText = label;
            var text = plot.Add.Text(label, x, y);
            text.LabelFontSize = 11;
            text.OffsetX = 7;
            text.OffsetY = -7;
        }
        // Room for the point labels at the edges.
        plot.Axes.Margins(horizontal: 0.2, vertical: 0.15);
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel("final average accuracy (%)");
        plot.ShowLegend(Alignment.LowerRight);
        Save(plot, path, width: 800, height: 500);
    }

    /// <summary>
    /// Sample-efficiency curves: final average accuracy against shots (one line per series), the shots as evenly spaced
    /// categories ("1", "5", ..., "all") so that "all" has a place.
    /// </summary>
    public static void SampleEfficiency(IReadOnlyDictionary<string, double[]> curves, string[] shotLabels, string path,
        string title = "Final average accuracy against shots")
    {
        if (curves.Count == 0) throw new ContinualMoEException("no sample-efficiency curves to plot");
        using var plot = new Plot();
        var xs = Enumerable.Range(0, shotLabels.Length).Select(x => (double)x).ToArray();
        foreach (var (name, curve) in curves)
        {
            // A cell without complete runs is NaN: its point is left out (the line joins its neighbours).
            var finite = Enumerable.Range(0, curve.Length).Where(i => double.IsFinite(curve[i])).ToArray();
            if (finite.Length == 0) continue;
            var line = plot.Add.Scatter(finite.Select(i => xs[i]).ToArray(), finite.Select(i => curve[i]).ToArray());
            line.LegendText = name;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(xs, shotLabels);
        plot.Axes.SetLimitsX(-0.5, shotLabels.Length - 0.5);
        plot.Title(title);
        plot.XLabel("training images per class per task (shots)");
        plot.YLabel("final average accuracy (%)");
        plot.ShowLegend(Alignment.LowerRight);
        Save(plot, path, width: 800, height: 500);
    }

    /// <summary>Heatmap of a grid's mean final accuracy: rows are shots, columns overlap fractions; scale 0..100 %.</summary>
    public static void GridHeatmap(double[,] values, string[] shotLabels, string[] overlapLabels, string path, string title) =>
        SaveHeatmap(values, shotLabels, overlapLabels, path, title, xLabel: "overlap (rho)", yLabel: "shots",
            colorBarLabel: "final average accuracy (%)", range: new ScottPlot.Range(0, 100), format: "F1");

    /// <summary>
    /// Expert activation frequency as a heatmap: one row per series (e.g. per task), one column per expert.
    /// A heatmap rather than grouped bars because tasks x experts quickly exceeds what bars can show legibly.
    /// The colour scale spans the data; cell labels are shown while cells are large enough to hold them.
    /// </summary>
    public static void ExpertUtilisation(double[,] frequency, string[] seriesLabels, string path,
        string title = "Expert utilisation")
    {
        ArgumentNullException.ThrowIfNull(frequency);
        ArgumentNullException.ThrowIfNull(seriesLabels);
        var series = frequency.GetLength(0);
        var experts = frequency.GetLength(1);
        if (series == 0 || experts == 0) throw new ContinualMoEException("expert utilisation matrix is empty");
        if (seriesLabels.Length != series)
            throw new ContinualMoEException($"{seriesLabels.Length} series labels for {series} series of expert utilisation");

        // Fractions read best with two decimals; counts or percentages with three significant digits.
        var fractions = frequency.Cast<double>().All(v => double.IsNaN(v) || v is >= 0 and <= 1);
        var expertLabels = Enumerable.Range(0, experts).Select(e => e.ToString(CultureInfo.InvariantCulture)).ToArray();
        SaveHeatmap(frequency, seriesLabels, expertLabels, path, title,
            xLabel: "expert", yLabel: "", colorBarLabel: "activation frequency",
            range: null, format: fractions ? "F2" : "G3");
    }

    /// <summary>
    /// A growing expert pool per task: stacked bars of the task's training samples judged in-distribution (reusing
    /// experts) and out-of-distribution (deciding growth), labelled with the experts added and the pool size after it.
    /// </summary>
    public static void PoolGrowth(int[] inDistribution, int[] outOfDistribution, int[] expertsAdded, int[] activeExperts,
        string[] taskLabels, string path, string title = "Expert pool per task")
    {
        var n = taskLabels.Length;
        if (n == 0) throw new ContinualMoEException("no tasks to plot for the expert pool");
        if (inDistribution.Length != n || outOfDistribution.Length != n || expertsAdded.Length != n || activeExperts.Length != n)
            throw new ContinualMoEException($"expert pool plot: {n} task labels but series of other lengths");

        using var plot = new Plot();
        var inColor = Colors.SteelBlue;
        var outColor = Colors.Orange;
        var bars = new List<Bar>();
        for (var t = 0; t < n; t++)
        {
            bars.Add(new Bar { Position = t, ValueBase = 0, Value = inDistribution[t], FillColor = inColor });
            bars.Add(new Bar { Position = t, ValueBase = inDistribution[t], Value = inDistribution[t] + outOfDistribution[t], FillColor = outColor });
            var label = plot.Add.Text($"+{expertsAdded[t]} (pool {activeExperts[t]})", t, inDistribution[t] + outOfDistribution[t]);
            label.Alignment = Alignment.LowerCenter;
            label.LabelFontSize = 12;
        }
        plot.Add.Bars(bars);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "in-distribution (reuse)", FillColor = inColor });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "out-of-distribution (new experts)", FillColor = outColor });
        plot.ShowLegend(Alignment.UpperRight);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, n).Select(t => (double)t).ToArray(), taskLabels);
        var top = Enumerable.Range(0, n).Max(t => inDistribution[t] + outOfDistribution[t]);
        plot.Axes.SetLimits(-0.6, n - 0.4, 0, Math.Max(1, top) * 1.25);
        plot.Title(title);
        plot.YLabel("training samples");
        Save(plot, path, width: Math.Max(600, 90 * n + 200), height: 500);
    }

    /// <summary>Task-by-task similarity in [0, 1] (e.g. from shared expert use) as a heatmap with a fixed 0..1 scale.</summary>
    public static void TaskSimilarity(double[,] similarity, string[] taskLabels, string path, string title = "Task similarity")
    {
        ArgumentNullException.ThrowIfNull(similarity);
        if (similarity.GetLength(0) == 0) throw new ContinualMoEException("task similarity matrix is empty");
        if (similarity.GetLength(0) != taskLabels.Length || similarity.GetLength(1) != taskLabels.Length)
            throw new ContinualMoEException($"task similarity matrix is {similarity.GetLength(0)}x{similarity.GetLength(1)} for {taskLabels.Length} task labels");
        SaveHeatmap(similarity, taskLabels, taskLabels, path, title, xLabel: "task", yLabel: "task",
            colorBarLabel: "similarity", range: new ScottPlot.Range(0, 1), format: "F2");
    }

    /// <summary>Confusion matrix: rows the true class, columns the predicted one, cells the share (%) of the row's images.</summary>
    public static void ConfusionMatrix(double[,] percentOfRow, string[] classNames, string path, string title = "Confusion matrix (% of true class)") =>
        SaveHeatmap(percentOfRow, classNames, classNames, path, title, xLabel: "predicted class", yLabel: "true class",
            colorBarLabel: "% of true class", range: new ScottPlot.Range(0, 100), format: "F0");

    private static void SaveHeatmap(double[,] values, string[] rowLabels, string[] columnLabels, string path,
        string title, string xLabel, string yLabel, string colorBarLabel, ScottPlot.Range? range, string format)
    {
        var rows = values.GetLength(0);
        var columns = values.GetLength(1);

        // Cells shrink as the grid grows so a 20-task matrix still fits a screen; labels are dropped once they would overlap.
        var cell = Math.Clamp(720 / Math.Max(rows, columns), 24, 80);
        var showLabels = cell >= 32;
        var fontSize = Math.Clamp(cell / 4f, 9f, 16f);

        using var plot = new Plot();
        var heatmap = plot.Add.Heatmap(values);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        heatmap.ManualRange = range;
        heatmap.NaNCellColor = Colors.Transparent;
        // Cell (r, c) is centred on x = c, y = rows-1-r: row 0 at the top, like the matrix as printed.
        heatmap.Rectangle = new CoordinateRect(-0.5, columns - 0.5, -0.5, rows - 0.5);

        var finite = values.Cast<double>().Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
        var (low, high) = range is { } r0 ? (r0.Min, r0.Max) : (finite.Min(), finite.Max());
        if (showLabels)
        {
            for (var r = 0; r < rows; r++)
                for (var c = 0; c < columns; c++)
                {
                    var value = values[r, c];
                    if (double.IsNaN(value)) continue;
                    var text = plot.Add.Text(value.ToString(format, CultureInfo.InvariantCulture), c, rows - 1 - r);
                    text.Alignment = Alignment.MiddleCenter;
                    text.LabelFontSize = fontSize;
                    // Viridis is dark at the low end and yellow at the high end: pick the readable text colour.
                    var position = high > low ? (value - low) / (high - low) : 1;
                    text.LabelFontColor = position < 0.6 ? Colors.White : Colors.Black;
                }
        }

        var colorBar = plot.Add.ColorBar(heatmap);
        colorBar.Label = colorBarLabel;

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, columns).Select(c => (double)c).ToArray(), columnLabels);
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, rows).Select(r => (double)(rows - 1 - r)).ToArray(), rowLabels);
        plot.Axes.SetLimits(-0.5, columns - 0.5, -0.5, rows - 0.5);
        plot.HideGrid();
        plot.Title(title);
        plot.XLabel(xLabel);
        if (yLabel.Length > 0) plot.YLabel(yLabel);

        var labelWidth = rowLabels.Max(l => l.Length) * 8;
        Save(plot, path, width: columns * cell + 220 + labelWidth, height: rows * cell + 150);
    }

    /// <summary>Adapter parameters after each task against the linear reference (one task's own expert per task).</summary>
    public static void ParameterGrowth(IReadOnlyList<long> parameters, long oneTaskExpert, string path, string title)
    {
        if (parameters.Count == 0) throw new ContinualMoEException("no parameter counts to plot");
        using var plot = new Plot();
        var xs = Enumerable.Range(1, parameters.Count).Select(x => (double)x).ToArray();
        var measured = plot.Add.Scatter(xs, parameters.Select(p => (double)p).ToArray());
        measured.LegendText = "adapter parameters in use";
        measured.LineWidth = 2;
        var linear = plot.Add.Scatter(xs, xs.Select(x => x * oneTaskExpert).ToArray());
        linear.LegendText = "T x one task's expert";
        linear.LinePattern = LinePattern.Dashed;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(xs, xs.Select(x => x.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Title(title);
        plot.XLabel("tasks learned");
        plot.YLabel("parameters");
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, path, width: 800, height: 500);
    }

    /// <summary>Share of rank-1 components in shared vs unique experts, per adapted layer (stacked bars summing to 1).</summary>
    public static void SharedUniqueComponents(IReadOnlyList<(string Site, int Shared, int Unique)> sites, string path, string title)
    {
        if (sites.Count == 0) throw new ContinualMoEException("no adapted layers to plot");
        using var plot = new Plot();
        var bars = new List<Bar>();
        for (var i = 0; i < sites.Count; i++)
        {
            var total = Math.Max(1, sites[i].Shared + sites[i].Unique);
            var shared = (double)sites[i].Shared / total;
            bars.Add(new Bar { Position = i, ValueBase = 0, Value = shared, FillColor = Colors.SteelBlue });
            bars.Add(new Bar { Position = i, ValueBase = shared, Value = 1, FillColor = Colors.Orange });
        }
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, sites.Count).Select(i => (double)i).ToArray(), sites.Select(s => s.Site).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.SetLimitsY(0, 1);
        plot.Title(title);
        plot.YLabel("shared (blue) / unique (orange) components");
        Save(plot, path, width: Math.Max(600, 40 * sites.Count + 200), height: 550);
    }

    private static void Save(Plot plot, string path, int width, int height)
    {
        var png = plot.GetImageBytes(width, height, ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }
}
