using System.Diagnostics;
using ContinualMoE.Cli.Service;
using ContinualMoE.Deployment;
using Microsoft.AspNetCore.Builder;
using SkiaSharp;

namespace ContinualMoE.Tests.Deployment;

/// <summary>
/// The service's web page in a real headless browser (Debian's chromium, which scripts/cmoe test installs): the page's
/// scripts fill in the model summary and the task table from the API, and a screenshot shows the accuracy-matrix plot.
/// </summary>
public class WebPageBrowserTests : IAsyncLifetime
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-web-" + Guid.NewGuid().ToString("N"));
    private WebApplication? app;
    private string url = "";

    public async Task InitializeAsync()
    {
        var package = Path.Combine(root, "model");
        using (var model = DeployedModel.Create(ModelPackageTests.NewModel("finetune-head"), null))
        {
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "data", "first"), 0, 1)));
            model.Save(package);
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "data", "second"), 2, 3)));
            model.Save(package);
        }
        app = ModelService.Build(new ServiceOptions(package, [Path.Combine(root, "data")], Urls: "http://127.0.0.1:0"), DeployedModel.Load(package));
        await app.StartAsync();
        url = app.Urls.First() + "/";
    }

    private static string Chromium() =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Debian's chromium is missing: apt-get install chromium (scripts/cmoe test installs it)");

    private static string Browse(params string[] arguments)
    {
        var start = new ProcessStartInfo(Chromium()) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=10000", "--window-size=1200,1400" }.Concat(arguments))
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2))) { process.Kill(entireProcessTree: true); throw new TimeoutException("chromium did not finish in 2 minutes"); }
        return output.Result;
    }

    [Fact]
    public void ThePageShowsTheModelItsTasksAndTheAccuracyMatrix()
    {
        var dom = Browse("--dump-dom", url);
        Assert.Contains("(finetune-head, version 2, 4 classes, 2 tasks)", dom);
        Assert.Contains("<td>c0, c1</td>", dom);
        Assert.Contains("<td>c2, c3</td>", dom);
        Assert.Contains("src=\"blob:", dom);   // the accuracy plot was fetched and shown

        var shot = Path.Combine(root, "page.png");
        Browse($"--screenshot={shot}", url);
        using var bitmap = SKBitmap.Decode(shot);
        Assert.Equal(1200, bitmap.Width);
        // The heatmap's viridis cells are the only strongly coloured pixels on the page (text is black on white).
        var coloured = 0;
        for (var y = 0; y < bitmap.Height; y += 2)
            for (var x = 0; x < bitmap.Width; x += 2)
            {
                var p = bitmap.GetPixel(x, y);
                if (Math.Max(p.Red, Math.Max(p.Green, p.Blue)) - Math.Min(p.Red, Math.Min(p.Green, p.Blue)) > 80) coloured++;
            }
        Assert.True(coloured > 2000, $"only {coloured} coloured pixels: the accuracy matrix plot is not on the page");
    }

    public async Task DisposeAsync()
    {
        if (app is not null) { await app.StopAsync(); await app.DisposeAsync(); }
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
