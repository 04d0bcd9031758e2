using ContinualMoE.Cli.Reporting;
using ContinualMoE.Evaluation;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace ContinualMoE.Tests.Reporting;

public class SummaryTableTests
{
    private static string Render(IRenderable renderable)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 200;
        console.Write(renderable);
        return writer.ToString();
    }

    private static AccuracyMatrix TwoTasks()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 90); a.Record(0, 1, 80); a.Record(1, 1, 70);
        return a;
    }

    [Fact]
    public void Metrics_table_shows_values_and_dashes_for_undefined()
    {
        var text = Render(SummaryTable.Metrics(ContinualMetrics.Compute(TwoTasks())));
        Assert.Contains("final average accuracy (%)", text);
        Assert.Contains("75.00", text);   // FAA = (80 + 70) / 2
        Assert.Contains("10.00", text);   // forgetting = 90 - 80
        Assert.Contains("-10.00", text);  // BWT
        Assert.Contains("–", text);       // no sizes: over-samples fields undefined
    }

    [Fact]
    public void Accuracy_grid_has_a_column_per_step_and_an_average_row()
    {
        var text = Render(SummaryTable.AccuracyGrid(TwoTasks()));
        Assert.Contains("after 2", text);
        Assert.Contains("90.00", text);
        Assert.Contains("avg", text);
        Assert.Contains("75.00", text);
    }

    [Fact]
    public void Accuracy_grid_of_an_empty_matrix_renders()
    {
        var text = Render(SummaryTable.AccuracyGrid(new AccuracyMatrix(2)));
        Assert.Contains("after 1", text);
        Assert.DoesNotContain("avg", text);
    }
}
